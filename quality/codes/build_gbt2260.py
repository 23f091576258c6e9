"""Rebuild gbt2260.csv — GB/T 2260 county-level codes with the years each was in force.

Source: the region-code history python-stdnum ships (cn/loc.dat), so no download is needed. Run by hand
when python-stdnum updates its table: ``python -m quality.codes.build_gbt2260``.
"""

from __future__ import annotations

import csv
import re
from importlib.resources import files
from pathlib import Path

TARGET = Path(__file__).with_name("gbt2260.csv")
_ENTRY = re.compile(r"\[(\d*)-(\d*)\](.+)")


def rows() -> list[dict]:
    text = files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    out, province, province_name = [], None, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province, rest = line.split(" ", 1)
            province_name = re.search(r'province="([^"]*)"', rest).group(1)
            continue
        suffix, rest = line.strip().split(" ", 1)
        names = re.search(r'county="([^"]*)"', rest).group(1)
        for part in names.split(","):
            m = _ENTRY.fullmatch(part)
            start, end, name = (m.group(1), m.group(2), m.group(3)) if m else ("", "", part)
            out.append(
                {
                    "code": province + suffix,
                    "name": name,
                    "province": province_name,
                    "valid_from": start,
                    "valid_to": end,
                }
            )
    return out


if __name__ == "__main__":
    with TARGET.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["code", "name", "province", "valid_from", "valid_to"])
        writer.writeheader()
        writer.writerows(rows())
    print(f"wrote {TARGET}")
