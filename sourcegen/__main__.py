"""CLI: ``python -m sourcegen --scale 1 --seed 20231231 --out data``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sourcegen.generate import DEFAULT_SEED, generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sourcegen", description="Generate synthetic 黄岩 mould & plastics sources.")
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 1,000 enterprises and 100,000 telemetry rows")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=Path("data"), help="writes OUT/landing and OUT/truth")
    parser.add_argument(
        "--history-years", type=int, default=0, help="earlier years of the monthly filings and annual statistics"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = generate(args.out, args.scale, args.seed, history_years=args.history_years)
    rows = sum(f["rows"] or 0 for f in manifest["files"])
    print(
        f"sourcegen: {manifest['enterprises']} enterprises, {len(manifest['files'])} files, {rows:,} rows "
        f"in {args.out / 'landing'} ({time.perf_counter() - started:.1f} s); truth in {args.out / 'truth'}"
    )


if __name__ == "__main__":
    main()
