"""Deterministic synthetic sources of 黄岩's mould and plastics industry, with a truth manifest of defects."""
