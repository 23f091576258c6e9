"""OpenLineage for every materialisation, from Dagster's event log: no asset writes lineage code.

``events`` turns one Dagster run into RunEvents, ``transport`` delivers them (JSON Lines under the lake,
and an HTTP endpoint with a spool), ``sensors`` emit for runs the daemon sees, ``impact`` answers
upstream/downstream questions from what was emitted.
"""
