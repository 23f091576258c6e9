"""Data requests (数据申请): what a consumer asks for, read from a YAML file or the service's API, checked
against the catalogue, and assessed by the grade of what it asks for.

A request names datasets of the publish zone, the columns it wants of each, a row scope (a column's value
prefix, e.g. a region code, or a list of values), its purpose, legal basis and period. The grade of a
request is the highest effective grade among the columns it reads — asks for or filters on (就高从严) —
so asking for fewer columns can lower it, and filtering on a hidden column cannot. The rules (configuration in ``exchange/policy.yaml``):

- L1 is shared on request: approved by rule when filed;
- L2 and L3 need a steward's approval, and the consumer's privacy policy is applied to the share;
- L4 is never shared: rejected when filed, with the reason; so is a dataset whose 共享属性 is 不予共享.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from lakehouse import config
from lakehouse.config import ConfigError, Strict
from privacy.grading import highest, level_rank

POLICY_PATH = Path(__file__).with_name("policy.yaml")
IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # dataset and column names (full match)
MAX_COLUMNS = 200
MAX_TEXT = 500
NAME = re.compile(
    r"[a-z0-9][a-z0-9_\-]{0,62}"
)  # request ids, share and table names (full match): safe in paths and URLs


class RequestError(ValueError):
    """A request that cannot be filed as written: says which file and which field."""


Level = Literal["L1", "L2", "L3", "L4"]
Transform = Literal["keep", "generalise", "round", "suppress"]


class RateLimits(Strict):
    filings_per_minute: int = Field(gt=0)
    calls_per_minute: int = Field(gt=0)


class DifferentialPrivacy(Strict):
    epsilon_per_share: float = Field(gt=0)
    budget_per_dataset: float = Field(gt=0)


class ExchangePolicy(Strict):
    shared_on_request_level: Level
    never_shared_level: Level
    max_period_days: int = Field(gt=0)
    signed_url_seconds: int = Field(gt=0)
    max_body_bytes: int = Field(gt=0)
    share_file_rows: int = Field(gt=0)
    dp: DifferentialPrivacy
    rate_limits: RateLimits
    # consumer kind → level → one transform, or a transform per identifier role
    consumer_policies: dict[str, dict[Level, Transform | dict[Literal["none", "quasi", "sensitive"], Transform]]]


@functools.cache
def policy() -> dict:
    return config.load(POLICY_PATH, ExchangePolicy, "exchange policy").model_dump()


@dataclass(frozen=True)
class RowScope:
    column: str
    prefix: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetAsk:
    dataset: str
    columns: tuple[str, ...]
    rows: tuple[RowScope, ...] = ()


@dataclass(frozen=True)
class Consumer:
    """The requester, as the identity registry (exchange/identity.py) knows it — never as a body says."""

    id: str
    name: str
    department: str
    kind: str  # a key of policy.yaml's consumer_policies: department | enterprise
    named_firms: bool = False  # entitled to identified (firm-level) datasets


@dataclass(frozen=True)
class DataRequest:
    id: str
    consumer: Consumer
    datasets: tuple[DatasetAsk, ...]
    purpose: str
    legal_basis: str
    start: dt.date
    end: dt.date  # the share expires at the end of this day (UTC+8, the departments' day)
    source: str = "api"  # the file it came from, or "api"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "consumer": {
                "id": self.consumer.id,
                "name": self.consumer.name,
                "department": self.consumer.department,
                "kind": self.consumer.kind,
                "named_firms": self.consumer.named_firms,
            },
            "datasets": [
                {
                    "dataset": a.dataset,
                    "columns": list(a.columns),
                    "rows": [
                        {
                            "column": r.column,
                            **({"prefix": r.prefix} if r.prefix is not None else {"in": list(r.values)}),
                        }
                        for r in a.rows
                    ],
                }
                for a in self.datasets
            ],
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "period": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "source": self.source,
        }


def _need(doc: dict, key: str, where: str, kind=str):
    value = doc.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RequestError(f"{where}: '{key}' is required")
    if not isinstance(value, kind):
        raise RequestError(f"{where}: '{key}' must be a {kind.__name__}, not {type(value).__name__}")
    return value.strip() if isinstance(value, str) else value


def _text(doc: dict, key: str, where: str) -> str:
    """A free-text field: at most MAX_TEXT printable characters."""
    value = _need(doc, key, where)
    if len(value) > MAX_TEXT or any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise RequestError(f"{where}: '{key}' is at most {MAX_TEXT} printable characters on one line")
    return value


def _date(value, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RequestError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _rows(spec, where: str) -> tuple[RowScope, ...]:
    if spec in (None, {}):
        return ()
    if not isinstance(spec, dict):
        raise RequestError(f"{where}: 'rows' maps a column to a value prefix or a list of values")
    out = []
    for column, scope in spec.items():
        if not isinstance(column, str) or not IDENT.fullmatch(column):
            raise RequestError(f"{where}.rows: {str(column)[:40]!r} is not a column name")
        if isinstance(scope, (str, int)) and not isinstance(scope, bool) and 0 < len(str(scope)) <= 100:
            out.append(RowScope(str(column), prefix=str(scope)))
        elif (
            isinstance(scope, list)
            and 0 < len(scope) <= 10_000
            and all(isinstance(v, (str, int)) and not isinstance(v, bool) and len(str(v)) <= 100 for v in scope)
        ):
            out.append(RowScope(str(column), values=tuple(str(v) for v in scope)))
        else:
            raise RequestError(f"{where}.rows.{column}: give a value prefix or a non-empty list of values")
    return tuple(out)


def _known(mapping: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise RequestError(f"{where}: unknown field(s) {unknown}; known are {sorted(known)}")


def parse(doc, request_id: str, consumer: Consumer, source: str = "api") -> DataRequest:
    """A request from its YAML/JSON document, filed by ``consumer`` (whom its credential or the registry
    says it is); RequestError says what is wrong and where. A ``consumer`` field in the document, if any,
    must name that same consumer."""
    where = source
    if not isinstance(doc, dict):
        raise RequestError(f"{where}: a request is a mapping with datasets, purpose, legal_basis, period")
    if not isinstance(request_id, str) or not NAME.fullmatch(request_id):
        raise RequestError(
            f"{where}: request id {request_id!r} must be lower-case letters, digits, '_' or '-' (at most 63)"
        )
    _known(doc, {"id", "consumer", "datasets", "purpose", "legal_basis", "period"}, where)
    if "consumer" in doc and doc["consumer"] != consumer.id:
        raise RequestError(
            f"{where}.consumer: a request is filed by its own consumer ({consumer.id}), not on behalf of another"
        )
    asks = _need(doc, "datasets", where, list)
    if not asks:
        raise RequestError(f"{where}: 'datasets' is empty")
    datasets = []
    for i, a in enumerate(asks):
        w = f"{where}.datasets[{i}]"
        if not isinstance(a, dict):
            raise RequestError(f"{w}: each entry has 'dataset', 'columns' and optionally 'rows'")
        _known(a, {"dataset", "columns", "rows"}, w)
        columns = _need(a, "columns", w, list)
        if (
            not columns
            or len(columns) > MAX_COLUMNS
            or not all(isinstance(x, str) and IDENT.fullmatch(x) for x in columns)
        ):
            raise RequestError(f"{w}.columns: a non-empty list of at most {MAX_COLUMNS} column names")
        if not isinstance(a.get("dataset"), str) or not IDENT.fullmatch(a["dataset"]):
            raise RequestError(f"{w}.dataset: a published dataset's name")
        if len(set(columns)) != len(columns):
            raise RequestError(f"{w}.columns: a column is listed twice")
        datasets.append(DatasetAsk(_need(a, "dataset", w), tuple(columns), _rows(a.get("rows"), w)))
    if len({a.dataset for a in datasets}) != len(datasets):
        raise RequestError(f"{where}.datasets: a dataset is listed twice")
    period = _need(doc, "period", where, dict)
    _known(period, {"start", "end"}, f"{where}.period")
    start, end = _date(period.get("start"), f"{where}.period.start"), _date(period.get("end"), f"{where}.period.end")
    if end < start:
        raise RequestError(f"{where}.period: ends ({end}) before it starts ({start})")
    longest = int(policy()["max_period_days"])
    if (end - start).days > longest:
        raise RequestError(f"{where}.period: {(end - start).days} days; a share lasts at most {longest} days")
    return DataRequest(
        id=request_id,
        consumer=consumer,
        datasets=tuple(datasets),
        purpose=_text(doc, "purpose", where),
        legal_basis=_text(doc, "legal_basis", where),
        start=start,
        end=end,
        source=source,
    )


def read_file(path: Path, consumer_of) -> DataRequest:
    """A request dropped in the inbox; its id is the ``id`` field or the file's name, its ``consumer`` the id
    of a registered consumer, resolved by ``consumer_of(id) -> Consumer`` (which raises for an unknown or
    disabled one)."""
    path = Path(path)
    largest = int(policy()["max_body_bytes"])  # the same limit as the service's API
    if path.stat().st_size > largest:
        raise RequestError(f"{path.name}: {path.stat().st_size} bytes; a request is at most {largest}")
    try:
        doc = config.read_yaml(path, untrusted=True)
    except ConfigError as exc:
        raise RequestError(f"{path.name}: not readable YAML: {exc.__cause__ or exc}") from None
    rid = str(doc.get("id") or path.stem) if isinstance(doc, dict) else path.stem
    who = doc.get("consumer") if isinstance(doc, dict) else None
    if not isinstance(who, str) or not who:
        raise RequestError(f"{path.name}: 'consumer' names a registered consumer by its id")
    try:
        consumer = consumer_of(who)
    except ValueError as exc:
        raise RequestError(f"{path.name}.consumer: {exc}") from None
    return parse(doc, rid.lower(), consumer, source=path.name)


@dataclass(frozen=True)
class Assessment:
    """What the rules say of a request against the catalogue."""

    level: str | None  # highest effective grade asked for; None when the request is invalid
    outcome: str  # approved (L1, by rule) | pending (a steward decides) | rejected
    reasons: tuple[str, ...] = ()
    levels: dict[str, str] = field(default_factory=dict)  # dataset → its requested columns' highest grade
    versions: dict[str, int] = field(default_factory=dict)  # dataset → publish version when assessed


def catalogue_index(catalogue: dict) -> dict[str, dict]:
    """Published datasets of an exported catalogue (catalogue.json), by dataset id."""
    return {d["dataset_id"]: d for d in catalogue.get("datasets", []) if d.get("zone") == "publish"}


def assess(request: DataRequest, catalogue: dict) -> Assessment:
    published = catalogue_index(catalogue)
    problems, levels, versions = [], {}, {}
    for ask in request.datasets:
        entry = published.get(ask.dataset)
        if entry is None:
            problems.append(f"{ask.dataset}: not a published dataset (only the publish zone is shared)")
            continue
        columns = {c["column"]: c for c in entry["columns"]}
        missing = [c for c in ask.columns if c not in columns]
        missing += [r.column for r in ask.rows if r.column not in columns]
        if missing:
            problems.append(f"{ask.dataset}: no column(s) {sorted(set(missing))}")
            continue
        if entry.get("share_type") == "不予共享":
            problems.append(f"{ask.dataset}: 共享属性 is 不予共享 (never shared)")
            continue
        if entry.get("disclosure") != "deidentified" and not request.consumer.named_firms:
            problems.append(
                f"{ask.dataset}: identifies firms by design; shared only with consumers whose legal basis covers "
                "named firms (registered so), not with this one"
            )
            continue
        # every column the share reads: those delivered and those its row scope filters on (a filter on a
        # hidden column reveals that column's values through which rows come back)
        read = list(dict.fromkeys([*ask.columns, *(r.column for r in ask.rows)]))
        grade = {c: columns[c].get("effective_grade") or columns[c]["grade"] for c in read}
        level = highest(grade.values())
        levels[ask.dataset] = level
        versions[ask.dataset] = entry.get("delta_version")
        if level_rank(level) >= level_rank(policy()["never_shared_level"]):
            top = [c for c in read if grade[c] == level]
            problems.append(f"{ask.dataset}: {', '.join(top)} graded {level}; {level} data is never shared")
    if problems:
        return Assessment(
            None if len(levels) < len(request.datasets) else highest(levels.values()),
            "rejected",
            tuple(problems),
            levels,
            versions,
        )
    level = highest(levels.values())
    on_request = level_rank(level) <= level_rank(policy()["shared_on_request_level"])
    reason = f"graded {level}: " + ("shared on request" if on_request else "needs a steward's approval")
    return Assessment(level, "approved" if on_request else "pending", (reason,), levels, versions)
