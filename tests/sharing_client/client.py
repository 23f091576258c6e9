"""Runs inside .venv-sharing with the official delta-sharing connector, never with the project's code.

    python client.py PROFILE tables              → JSON list of "share.schema.table"
    python client.py PROFILE read TABLE OUT      → the table as pandas, written to OUT (Parquet); JSON summary
    python client.py PROFILE read TABLE OUT OPTIONS_JSON
                                                 → the same with load_as_pandas options (use_delta_format,
                                                   version, timestamp, limit, jsonPredicateHints)
    python client.py PROFILE changes TABLE OUT OPTIONS_JSON
                                                 → load_table_changes_as_pandas with those options
    python client.py PROFILE version TABLE       → JSON table version
    python client.py PROFILE time TABLE          → JSON rows and seconds of load_as_pandas (for make bench)
    python client.py - local DELTA_URI           → the same for deltalake reading the table locally into pandas

On an HTTP error: JSON {"status": code, "message": …} and exit code 2.
"""

import json
import sys
import time

import delta_sharing
from requests.exceptions import HTTPError


def main() -> int:
    profile, command, *rest = sys.argv[1:]
    try:
        if command == "tables":
            client = delta_sharing.SharingClient(profile)
            print(json.dumps([f"{t.share}.{t.schema}.{t.name}" for t in client.list_all_tables()]))
        elif command in ("read", "changes"):
            table, out, *options = rest
            kwargs = json.loads(options[0]) if options else {}
            load = delta_sharing.load_as_pandas if command == "read" else delta_sharing.load_table_changes_as_pandas
            frame = load(f"{profile}#{table}", **kwargs)
            frame.to_parquet(out, index=False)
            print(json.dumps({"rows": len(frame), "columns": list(frame.columns)}))
        elif command == "time":
            started = time.perf_counter()
            frame = delta_sharing.load_as_pandas(f"{profile}#{rest[0]}")
            print(json.dumps({"rows": len(frame), "seconds": time.perf_counter() - started}))
        elif command == "local":
            from deltalake import DeltaTable

            started = time.perf_counter()
            frame = DeltaTable(rest[0]).to_pandas()
            print(json.dumps({"rows": len(frame), "seconds": time.perf_counter() - started}))
        elif command == "version":
            print(json.dumps(delta_sharing.get_table_version(f"{profile}#{rest[0]}")))
        else:
            raise SystemExit(f"unknown command {command}")
    except HTTPError as exc:
        print(json.dumps({"status": exc.response.status_code, "message": str(exc)}))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
