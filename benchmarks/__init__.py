"""``make bench``: stage timings, peak memory and the plain DuckDB baseline."""
