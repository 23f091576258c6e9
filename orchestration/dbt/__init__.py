"""dbt wiring: the Delta source plugin dbt-duckdb loads, the project handle and the Dagster translator."""
