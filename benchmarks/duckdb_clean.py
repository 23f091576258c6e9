"""The plain DuckDB baseline for the clean stage: the same raw tables, the same standardisation and checks.

What a competent engineer would write with DuckDB alone: one SQL statement per dataset, generated from
the same registry and rule book — exact de-duplication, text cleaning (full-width → half-width,
invisible characters, white space), codes, names, dates, months, timestamps and units, every row rule
(GB 32100 check characters, GB 11643 MOD 11-2 and birth date, code tables, ranges, references), the
quarantine as a findings table, business-key de-duplication with the latest delivery winning, and the
std rows written as Parquet. Raw Delta tables are read through deltalake's Arrow dataset (DuckDB has
no Delta reader without a downloaded extension). No Dagster, no catalogue, no scores, no history.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
from deltalake import DeltaTable

from benchmarks.duckdb_baseline import timed_main
from lakehouse.registry import registry
from quality.conform import LATEST, PRIVATE_USE
from quality.identifiers import USCC_ALPHABET, authority_categories, industry_codes, region_codes, region_history
from quality.rulebook import RowRule, rules_for
from quality.units import factors

FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
INVISIBLE = r"[\x{200b}-\x{200f}\x{2060}-\x{2064}\x{feff}\x{ad}\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}]"
DAY_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日"]
MONTH = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$"
MONTH_COMPACT = r"^(\d{4})(\d{2})$"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(values) -> str:
    return "(" + ", ".join(_q(str(v)) for v in values) + ")"


def _macros(con: duckdb.DuckDBPyConnection) -> None:
    org_values = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    org_weights = [3, 7, 9, 10, 5, 8, 4, 2]
    uscc_weights = [pow(3, i, 31) for i in range(17)]
    ric_weights = [pow(2, 17 - i, 11) for i in range(17)]
    con.execute(f"""
        CREATE MACRO half_width(x) AS CASE WHEN regexp_matches(x, '[\\x{{ff01}}-\\x{{ff5e}}\\x{{3000}}]')
            THEN translate(x, {_q(FULL)}, {_q(HALF)}) ELSE x END;
        CREATE MACRO clean(x) AS nullif(trim(regexp_replace(regexp_replace(half_width(x),
            {_q(INVISIBLE)}, '', 'g'), '\\s+', ' ', 'g')), '');
        CREATE MACRO code_of(t) AS nullif(upper(replace(t, ' ', '')), '');
        CREATE MACRO name_of(t) AS nullif(replace(replace(replace(t, ' ', ''), '(', '（'), ')', '）'), '');
        CREATE MACRO month_of(t) AS (
            WITH p AS (SELECT coalesce(nullif(regexp_extract(t, {_q(MONTH)}, 1), ''),
                                       nullif(regexp_extract(t, {_q(MONTH_COMPACT)}, 1), '')) AS y,
                              coalesce(nullif(regexp_extract(t, {_q(MONTH)}, 2), ''),
                                       nullif(regexp_extract(t, {_q(MONTH_COMPACT)}, 2), '')) AS m)
            SELECT CASE WHEN TRY_CAST(m AS INTEGER) BETWEEN 1 AND 12 THEN y || '-' || lpad(m, 2, '0') END FROM p);
        CREATE MACRO date_of(t) AS
            coalesce({", ".join(f"try_strptime(t, {_q(f)})" for f in DAY_FORMATS)})::DATE;
        CREATE MACRO uscc_bad(u) AS NOT (
            length(u) = 18 AND regexp_full_match(u, '[{USCC_ALPHABET}]{{18}}')
            AND substr(u, 1, 2) IN {_list(authority_categories())}
            AND substr(u, 3, 6) IN (SELECT code FROM regions)
            AND substr(u, 17, 1) = (WITH s AS (SELECT list_sum(list_transform(range(8),
                    lambda i: (instr('{org_values}', substr(u, 9 + i, 1)) - 1) * {org_weights}[i + 1]))::BIGINT AS v)
                SELECT CASE (11 - v % 11) WHEN 10 THEN 'X' WHEN 11 THEN '0' ELSE (11 - v % 11)::VARCHAR END FROM s)
            AND substr(u, 18, 1) = substr('{USCC_ALPHABET}', 1 + (31 - list_sum(list_transform(range(17),
                    lambda i: (instr('{USCC_ALPHABET}', substr(u, 1 + i, 1)) - 1) * {uscc_weights}[i + 1]))::BIGINT % 31) % 31, 1));
        CREATE MACRO ric_bad(n) AS NOT (
            length(n) = 18 AND regexp_matches(n, '^\\d{{17}}')
            AND substr(n, 18, 1) = replace(((12 - list_sum(list_transform(range(17),
                    lambda i: substr(n, 1 + i, 1)::INTEGER * {ric_weights}[i + 1]))::BIGINT % 11) % 11)::VARCHAR, '10', 'X')
            AND try_strptime(substr(n, 7, 8), '%Y%m%d') IS NOT NULL
            AND EXISTS (SELECT 1 FROM ric_areas a WHERE a.code = substr(n, 1, 6)
                AND year(try_strptime(substr(n, 7, 8), '%Y%m%d')) BETWEEN a.valid_from AND a.valid_to));
        CREATE MACRO mobile_bad(m) AS NOT regexp_full_match(regexp_replace(m, '^\\+?86', ''), '1[3-9]\\d{{9}}');
    """)


def _tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE TABLE regions AS SELECT unnest({list(region_codes())}) AS code")
    con.execute(f"CREATE TABLE industries AS SELECT unnest({list(industry_codes())}) AS code")
    rows = [(code, since or 0, until or 9999) for code, since, until in region_history()]
    con.execute("CREATE TABLE ric_areas (code VARCHAR, valid_from INTEGER, valid_to INTEGER)")
    con.executemany("INSERT INTO ric_areas VALUES (?, ?, ?)", rows)


def _factor(unit_sql: str, measure: str) -> str:
    whens = " ".join(f"WHEN {_q(u)} THEN {f!r}" for u, (m, _, f) in factors().items() if m == measure)
    return f"(CASE {unit_sql} {whens} END)"


def _typed(c, names: set[str]) -> str:
    t = f"__txt_{c.name}"
    match c.type:
        case "code":
            return f"code_of({t})"
        case "string":
            return f"name_of({t})" if c.name in names else t
        case "date":
            return f"date_of({t})"
        case "month":
            return f"month_of({t})"
        case "timestamp":
            return f"try_strptime({t}, '%Y-%m-%dT%H:%M:%S%z')"
    number = f"TRY_CAST(replace({t}, ',', '') AS DOUBLE)"
    if c.type == "integer":
        return f"TRY_CAST(round({number}) AS BIGINT)"
    if c.unit_column:
        return f"{number} * {_factor(f'__txt_{c.unit_column}', c.measure)}"
    return f"{number} * {factors()[c.unit][2]!r}" if c.unit and c.unit in factors() else number


def _fails(r: RowRule, types: dict[str, str]) -> str:
    std, txt = f'"{r.column}"', f"__txt_{r.column}"
    present = f"{std} IS NOT NULL"
    match r.check:
        case "required":
            e = f"{std} IS NULL"
        case "uscc":
            e = f"{present} AND uscc_bad({std})"
        case "ric":
            e = f"{present} AND ric_bad({std})"
        case "mobile":
            e = f"{present} AND mobile_bad({std})"
        case "region_code":
            e = f"{present} AND {std} NOT IN (SELECT code FROM regions)"
        case "industry_code":
            e = f"{present} AND {std} NOT IN (SELECT code FROM industries)"
        case "pattern":
            e = f"{present} AND NOT regexp_matches({std}::VARCHAR, {_q(r.pattern)})"
        case "parsed":
            e = f"{txt} IS NOT NULL AND {std} IS NULL"
        case "in":
            e = f"{present} AND {std}::VARCHAR NOT IN {_list(r.values)}"
        case "range":
            parts = ([f"{std} < {r.min}"] if r.min is not None else []) + (
                [f"{std} > {r.max}"] if r.max is not None else []
            )
            e = f"{present} AND ({' OR '.join(parts)})"
        case "unit_known":
            e = f"{txt} IS NULL OR {_factor(txt, r.measure)} IS NULL"
        case "references":
            e = f"{present} AND {std} NOT IN (SELECT uscc FROM ref_{r.table})"
        case "no_private_use":
            e = f"{present} AND regexp_matches({std}::VARCHAR, {_q(PRIVATE_USE)})"
        case "not_after_ingest":
            when = "_ingested_at::DATE" if types[r.column] != "month" else "strftime(_ingested_at::DATE, '%Y-%m')"
            e = f"{present} AND {std} > {when}"
        case _:
            raise ValueError(r.check)
    return f"coalesce({e}, TRUE)"


def clean_dataset(con: duckdb.DuckDBPyConnection, lake: Path, out: Path, ds) -> dict:
    rules = rules_for(ds.id)
    con.register("raw_arrow", DeltaTable(str(lake / "raw" / ds.id)).to_pyarrow_dataset())
    for table in rules.references:
        con.execute(f"CREATE OR REPLACE VIEW ref_{table} AS SELECT uscc FROM '{out}/std_{table}.parquet'")
    source = [c.name for c in ds.columns]
    cols = ", ".join(f'"{c}"' for c in source)
    txt = ", ".join(f'clean("{c}") AS __txt_{c}' for c in source)
    typed = ", ".join(f'{_typed(c, set(rules.names))} AS "{c.name}"' for c in ds.columns)
    raws = ", ".join(f'"{c}" AS __raw_{c}' for c in source)
    types = {c.name: c.type for c in ds.columns}
    flags = ", ".join(f"{_fails(r, types)} AS __fail_{r.id}" for r in rules.rules)
    errors = " OR ".join(f"__fail_{r.id}" for r in rules.rules if r.severity == "ERROR") or "FALSE"
    latest = ", ".join(LATEST)
    txt_cols = ", ".join(f"__txt_{c}" for c in source)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE flagged AS
        WITH ordered AS (SELECT *, row_number() OVER (ORDER BY {latest}) AS __order FROM raw_arrow),
        exact AS (SELECT * EXCLUDE (__order), max(__order) OVER (PARTITION BY {cols}) AS __latest FROM ordered
                  QUALIFY row_number() OVER (PARTITION BY {cols} ORDER BY __order) = 1),
        cleaned AS (SELECT *, {txt} FROM exact),
        standard AS (SELECT * EXCLUDE ({cols}), {raws}, {typed} FROM cleaned)
        SELECT * EXCLUDE ({txt_cols}), {flags} FROM standard
    """)
    findings = " UNION ALL ".join(
        f"SELECT {_q(ds.id)} AS dataset, _source_file AS source_file, _row_number AS row_number, "
        f"{_q(r.id)} AS rule_id, {_q(r.severity)} AS severity, __raw_{r.column}::VARCHAR AS value "
        f"FROM flagged WHERE __fail_{r.id}"
        for r in rules.rules
    )
    con.execute(f"COPY ({findings}) TO '{out}/findings_{ds.id}.parquet' (FORMAT parquet)")
    keep = ", ".join(f'"{c}"' for c in source) + ", _source_department, _source_file, _file_sha256, _row_number, "
    keep += "_batch_id, _ingested_at, _period"
    key = ", ".join(f'"{k}"' for k in rules.key)
    con.execute(f"""
        COPY (SELECT {keep} FROM flagged WHERE NOT ({errors})
              QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY __latest DESC) = 1)
        TO '{out}/std_{ds.id}.parquet' (FORMAT parquet)
    """)
    (rows_in,) = con.execute("SELECT count(*) FROM raw_arrow").fetchall()[0]
    (deduped, quarantined) = con.execute(f"SELECT count(*), count(*) FILTER ({errors}) FROM flagged").fetchall()[0]
    (rows_out,) = con.execute(f"SELECT count(*) FROM '{out}/std_{ds.id}.parquet'").fetchall()[0]
    con.unregister("raw_arrow")
    return {"rows_in": rows_in, "rows_out": rows_out, "quarantined": quarantined, "exact": rows_in - deduped}


def run(lake: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 2})
    _tables(con)
    _macros(con)
    datasets = {}
    for ds in registry().datasets:  # registration first: the others reference it
        started = time.perf_counter()
        datasets[ds.id] = clean_dataset(con, lake, out, ds) | {"seconds": time.perf_counter() - started}
    return {"rows": sum(d["rows_in"] for d in datasets.values()), "datasets": datasets}


if __name__ == "__main__":
    timed_main(run)
