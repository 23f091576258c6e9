"""``python -m orchestration.cli``: the warehouse's command line, one module per command group.

- ``demo``: generate the demo sources, run the pipeline and the exchange's example requests (demo.py);
- ``summary``: what the warehouse holds now (report.py);
- ``exchange``: data requests, decisions, revocations, the ledger (exchange.py);
- ``lineage``: impact questions over the emitted OpenLineage events, re-sending spooled ones (lineage.py);
- ``audit``, ``keys``, ``reidentify``, ``export``, ``grade-override``: privileged operations (privacy.py);
- ``prepare-instance``: the project-local DAGSTER_HOME.

The argument parser and dispatch are in main.py.
"""
