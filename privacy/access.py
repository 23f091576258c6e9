"""Who may read what: roles (steward, modeler, consumer of a department) by zone, from policy.yaml, and
the privileged operations stewards alone may perform — re-identification — written to the audit log.

Every command that hands a lake table to a person reads through ``read`` (the CLI's ``export``). The
sharing service does not serve lake tables: it serves only the per-request share extracts, which are built
through the consumer's policy and the privacy gate (``exchange/shares.py``), to a bearer of that request's
token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from lakehouse.lake import Lake
from privacy import transforms
from privacy.audit import AuditLog
from privacy.keys import KeyRing
from privacy.policy import POLICY_PATH, policy, pseudonym_domain, pseudonym_input

ROLES = ("steward", "modeler", "consumer")


class AccessDenied(PermissionError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    department: str | None = None  # a consumer reads for a department

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: roles are {ROLES}")
        if self.role == "consumer" and not self.department:
            raise ValueError("a consumer reads for a department: give its department")


def can_read(who: Principal, zone: str) -> bool:
    zones = policy()["zones"]
    if zone in zones:
        return who.role in zones[zone]["readers"]
    # operational zones (catalogue is metadata for everyone; quality and quarantine for the data's people)
    return {"catalogue": True, "quality": who.role != "consumer", "quarantine": who.role == "steward"}.get(
        zone, who.role == "steward"
    )


def read(lake: Lake, who: Principal, zone: str, name: str, columns: list[str] | None = None) -> pl.DataFrame:
    """A table as ``who`` may see it, or AccessDenied saying why."""
    if not can_read(who, zone):
        readers = policy()["zones"].get(zone, {}).get("readers", ["steward"])
        raise AccessDenied(
            f"{who.name} ({who.role}) may not read {zone}/{name}: {zone} is for {readers} ({POLICY_PATH})"
        )
    frame = lake.read(zone, name, columns=columns)
    if frame is None:
        raise FileNotFoundError(f"no table {zone}/{name} in {lake.root}")
    return frame


def require_steward(who: Principal, audit: AuditLog, action: str, **detail) -> None:
    """Privileged operations are for stewards; a refusal is itself written to the audit log."""
    if who.role != "steward":
        audit.append(f"{action}.denied", actor=who.name, **detail)
        raise AccessDenied(f"{who.name} ({who.role}) may not {action}: stewards only")


def reidentify(
    lake: Lake, who: Principal, ring: KeyRing, audit: AuditLog, dataset: str, column: str, pseudonym: str, reason: str
) -> list[str]:
    """The original values behind a pseudonym, from raw — stewards only, with a reason, always audited."""
    require_steward(who, audit, "reidentify", dataset=dataset, column=column, reason=reason)
    if not reason.strip():
        raise ValueError("re-identification needs a reason")
    from lakehouse.registry import registry
    from quality import text

    version = int(pseudonym.split(":", 1)[0].removeprefix("k"))
    kinds = {c.name: c.type for c in registry().dataset(dataset).columns}
    qualifier = policy()["pseudonym_qualifiers"].get(column)
    needed = [column] + ([qualifier] if qualifier in kinds else [])

    def std_value(name: str) -> pl.Expr:  # the std value the pseudonym was computed from
        cleaned = text.clean_text(pl.col(name))
        return (text.code_of(cleaned) if kinds[name] == "code" else cleaned).alias(name)

    raw = lake.read("raw", dataset, columns=[*needed, "_file_sha256", "_row_number"])
    values = raw.select(*(std_value(c) for c in needed), "_file_sha256", "_row_number").filter(
        pl.col(column).is_not_null()
    )
    computed = transforms.pseudonym(pseudonym_input(column, values.columns), ring, pseudonym_domain(column), version)
    found = sorted(set(values.filter(computed == pseudonym)[column].to_list()))
    audit.append(
        "reidentify",
        actor=who.name,
        dataset=dataset,
        column=column,
        pseudonym=pseudonym,
        reason=reason,
        matches=len(found),
    )
    return found


def record_policy(audit: AuditLog) -> bool:
    """Appends a ``policy.change`` entry when the privacy configuration differs from the last one recorded
    (policy, grading vocabulary, and the classifications in the source registry); True if it did."""
    from lakehouse.registry import REGISTRY_PATH
    from privacy.grading import GRADING_PATH

    digest = hashlib.sha256()
    for path in (POLICY_PATH, GRADING_PATH, REGISTRY_PATH):
        digest.update(path.read_bytes())
    current = digest.hexdigest()
    last = next((e for e in reversed(audit.entries()) if e["action"] == "policy.change"), None)
    if last is not None and last["detail"]["sha256"] == current:
        return False
    audit.append("policy.change", sha256=current, previous=last["detail"]["sha256"] if last else None)
    return True
