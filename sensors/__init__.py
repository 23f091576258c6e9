"""Sensors, automation and schedules: ``sensors.defs`` is what the code location loads."""
