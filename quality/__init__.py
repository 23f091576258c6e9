"""Governance and quality (治理): standardisers, validators, rule books, pandera schemas, scores.

Plain code over polars frames, free of Dagster; assets call it.
"""
