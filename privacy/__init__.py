"""Privacy and security: classification and grading, detectors, transforms, zone policies, keys, audit.

Plain code over polars frames, free of Dagster; assets call it.
"""
