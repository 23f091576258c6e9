"""The exchange's operations, each one written to the ledger: file a request, decide it, build its share and
issue its token, revoke, expire. The Dagster jobs, the CLI and the sharing service's API all call these.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from exchange import shares
from exchange.identity import IdentityError, Principal, Principals
from exchange.ledger import Ledger, RequestState
from exchange.requests import Consumer, DataRequest, RequestError, assess, policy, read_file
from lakehouse.lake import CATALOGUE_EXPORT, Lake
from privacy.audit import AuditLog, EntryTooLarge, owner_only
from privacy.dp import Budget

RULES = "rules"  # the actor of decisions the grade rules take


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Exchange:
    lake: Lake
    folder: Path  # inbox/, filed/, refused/, profiles/, principals.json and ledger.jsonl
    endpoint: str = "http://127.0.0.1:8765/delta-sharing"
    audit_log: Path | None = None  # the privileged audit log, where the ledger anchors its head
    shared_ledger: Ledger | None = None  # a long-running service's cached ledger (CachedLedger)
    shared_principals: Principals | None = None

    @property
    def ledger(self) -> Ledger:
        return self.shared_ledger or Ledger(self.folder / "ledger.jsonl", anchor=self.anchor)

    @property
    def anchor(self) -> AuditLog | None:
        return AuditLog(self.audit_log) if self.audit_log else None

    @property
    def principals(self) -> Principals:
        return self.shared_principals or Principals(self.folder / "principals.json")

    @property
    def dp_budget(self) -> Budget:
        """ε spent per consumer and dataset on noised releases (``exchange/policy.yaml`` dp), audited."""
        total = float(policy()["dp"]["budget_per_dataset"])
        return Budget(self.folder / "dp_budget.json", total, self.anchor or AuditLog(self.folder / "dp_audit.jsonl"))

    def consumer(self, consumer_id: str) -> Consumer:
        """A registered, active consumer as a request's requester (IdentityError otherwise)."""
        p = self.principals.get(consumer_id, "consumer")
        return Consumer(p.id, p.name, p.department, p.kind or "", p.named_firms)

    @property
    def inbox(self) -> Path:
        return self.folder / "inbox"

    def catalogue(self) -> dict:
        body = self.lake.read_bytes("catalogue", CATALOGUE_EXPORT)
        if body is None:
            where = self.lake.uri("catalogue", CATALOGUE_EXPORT)
            raise FileNotFoundError(f"no catalogue export at {where}: run the pipeline (make demo) first")
        return json.loads(body.decode("utf-8"))

    def state(self, request_id: str) -> RequestState:
        s = self.ledger.states().get(request_id) if isinstance(request_id, str) else None
        if s is None:
            raise KeyError(f"no data request {request_id!r} in the ledger {self.ledger.path}")
        return s

    # --- filing ------------------------------------------------------------------------------------------
    def file(self, request: DataRequest, actor: str) -> RequestState:
        """Record a request and what the grade rules say of it (L1 approved, L4 rejected, else pending)."""
        if request.id in self.ledger.states():
            raise RequestError(f"{request.source}: request id {request.id!r} was filed before; choose another id")
        verdict = assess(request, self.catalogue())
        try:
            self.ledger.record(
                "request.filed",
                actor,
                request.id,
                request=request.to_dict(),
                level=verdict.level,
                reasons=list(verdict.reasons),
                catalogue_versions=verdict.versions,
            )
        except EntryTooLarge as exc:
            raise RequestError(f"{request.source}: {exc}") from None
        if verdict.outcome != "pending":
            self.ledger.record(
                "request.decided",
                RULES,
                request.id,
                decision=verdict.outcome,
                reason="; ".join(verdict.reasons),
                pins=verdict.versions if verdict.outcome == "approved" else {},
            )
        return self.state(request.id)

    def file_inbox(self, actor: str) -> list[tuple[str, RequestState | str]]:
        """File every request in the inbox; each file moves to filed/ or, unreadable or invalid, to refused/
        with a reason file beside it. Returns (file, state or reason)."""
        out = []
        for path in sorted(self.inbox.glob("*.y*ml")):
            try:
                state = self.file(read_file(path, self.consumer), actor)
                target = self.folder / "filed" / path.name
                out.append((path.name, state))
            except (RequestError, IdentityError, FileNotFoundError) as exc:
                target = self.folder / "refused" / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.with_name(path.name + ".reason.txt").write_text(str(exc) + "\n", encoding="utf-8")
                out.append((path.name, str(exc)))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
        return out

    # --- decisions -----------------------------------------------------------------------------------------
    def _signed(self, signed: str, kind: str, request_id: str | None) -> tuple:
        """(steward, action) of a signed action of ``kind`` — naming ``request_id`` when one is expected (a
        launchpad's form names it too); IdentityError otherwise."""
        steward, action = self.principals.verify_signed(signed)
        if action.get("action") != kind:
            raise IdentityError(f"the signed action is {action.get('action')!r}, not {kind!r}")
        if request_id is not None and action.get("request_id") != request_id:
            raise IdentityError(f"the signed action is for request {action.get('request_id')!r}, not {request_id!r}")
        return steward, action

    def decide(self, signed: str, request_id: str | None = None) -> RequestState:
        """A steward's signed decision on a pending request (``identity.sign(..., "decide", decision=…)``);
        approval pins the publish versions current now. The ledger records the steward the signing key
        belongs to. IdentityError when the signature does not verify."""
        steward, action = self._signed(signed, "decide", request_id)
        evidence = {"signature_sha256": hashlib.sha256(signed.encode()).hexdigest()}
        return self._decide(steward, action.get("request_id"), action.get("decision"), action.get("reason"), evidence)

    def decide_as(self, steward: Principal, request_id: str, decision: str, reason: str, session: str) -> RequestState:
        """The same decision taken in the steward console by a signed-in steward: the ledger records that
        steward and the digest of the console session it was taken in (``session``: that digest)."""
        return self._decide(self._steward(steward), request_id, decision, reason, {"console_session_sha256": session})

    def _steward(self, who: Principal) -> Principal:
        """The registry's current record of a signed-in steward (disabled meanwhile: IdentityError)."""
        return self.principals.get(who.id, "steward")

    def _decide(self, steward: Principal, request_id, decision, reason, evidence: dict) -> RequestState:
        if decision not in ("approved", "rejected"):
            raise ValueError(f"decision {decision!r}: approved or rejected")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("a decision gives a reason")
        s = self.state(request_id)
        if s.status != "pending":
            raise ValueError(f"request {request_id} is {s.status}, not pending: nothing to decide")
        pins = self._publish_versions(s) if decision == "approved" else {}
        for name in (d for d, v in pins.items() if v is None):
            raise FileNotFoundError(f"{name} is not in the publish zone any more")
        self.ledger.record(
            "request.decided",
            steward.label,
            request_id,
            decision=decision,
            reason=reason.strip(),
            pins=pins,
            steward={"id": steward.id, "name": steward.name, "department": steward.department},
            **evidence,
        )
        return self.state(request_id)

    # --- shares --------------------------------------------------------------------------------------------
    def build(self, request_id: str, actor: str, k: int | None = None) -> tuple[dict, str | None]:
        """Build the share of an approved request and, the first time, issue its bearer token (written to a
        profile file only the consumer is given). Returns the manifest and the new profile's path."""
        s = self.state(request_id)
        if s.status != "approved":
            raise ValueError(f"request {request_id} is {s.status}: only an approved request gets a share")
        manifest = shares.build(self.lake, s, self.catalogue(), k, self.dp_budget)
        self._built(request_id, actor, manifest)
        profile = None if s.tokens else self.issue_token(request_id, actor)
        return manifest, profile

    def _built(self, request_id: str, actor: str, manifest: dict) -> None:
        """A share that passed: its manifest written beside it and the build on the ledger."""
        shares.write_manifest(self.lake, manifest)
        self.ledger.record(
            "share.built",
            actor,
            request_id,
            manifest=manifest,
            manifest_sha256=hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest(),
        )

    def _publish_versions(self, s: RequestState) -> dict[str, int | None]:
        """The current publish version of every dataset a request asks for (None: not published)."""
        out: dict[str, int | None] = {}
        for ask in s.request["datasets"]:
            table = self.lake.table("publish", ask["dataset"])
            out[ask["dataset"]] = table.version() if table is not None else None
        return out

    def refresh(self, request_id: str, actor: str, k: int | None = None) -> tuple[dict | None, str]:
        """An approved share follows its published datasets: when one of them has a new version, the share is
        built again from the current versions — the same scope (datasets, columns, rows), the same policy and
        gate — and the ledger records the new pins (``share.repinned``) and the build. A refused build
        changes nothing: the share stays at its pins, and ShareRefused says why. Returns the manifest (None
        when nothing changed or the request is not active) and what happened."""
        s = self.state(request_id)
        if s.status != "approved":
            return None, f"request {request_id} is {s.status}: its share is not rebuilt"
        current = self._publish_versions(s)
        for name in (d for d, v in current.items() if v is None):
            raise shares.ShareRefused(f"{name} is not in the publish zone any more")
        if current == s.pins and s.manifest is not None:
            return None, f"share {request_id} is current (publish versions {current})"
        candidate = dataclasses.replace(s, pins=current)
        manifest = shares.build(self.lake, candidate, self.catalogue(), k, self.dp_budget)  # refused: raises
        moved = {d: (s.pins.get(d), v) for d, v in current.items() if s.pins.get(d) != v}
        self.ledger.record("share.repinned", actor, request_id, pins=current, previous=s.pins)
        self._built(request_id, actor, manifest)
        what = ", ".join(f"{d} {a} → {b}" for d, (a, b) in moved.items()) or "rebuilt"
        return manifest, f"share {request_id} follows the new publish versions: {what}"

    def issue_token(self, request_id: str, actor: str) -> str:
        s = self.state(request_id)
        token = secrets.token_urlsafe(32)
        self.ledger.record(
            "token.issued",
            actor,
            request_id,
            token_sha256=token_digest(token),
            expires_at=s.expires_at.isoformat(),
        )
        path = owner_only(self.folder / "profiles") / f"{request_id}.share"
        body = {
            "shareCredentialsVersion": 1,
            "endpoint": self.endpoint,
            "bearerToken": token,
            "expirationTime": s.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=2)
        return str(path)

    def revoke(self, signed: str, request_id: str | None = None) -> RequestState:
        """A steward's signed revocation (``identity.sign(..., "revoke")``): the share's token stops working
        on the service's next call."""
        steward, action = self._signed(signed, "revoke", request_id)
        evidence = {"signature_sha256": hashlib.sha256(signed.encode()).hexdigest()}
        return self._revoke(steward, action.get("request_id"), action.get("reason"), evidence)

    def revoke_as(self, steward: Principal, request_id: str, reason: str, session: str) -> RequestState:
        """A revocation by a steward signed in to the console (see ``decide_as``)."""
        return self._revoke(self._steward(steward), request_id, reason, {"console_session_sha256": session})

    def _revoke(self, steward: Principal, request_id, reason, evidence: dict) -> RequestState:
        s = self.state(request_id)
        if s.status not in ("approved", "pending"):
            raise ValueError(f"request {request_id} is {s.status}: nothing to revoke")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("a revocation gives a reason")
        self.ledger.record(
            "share.revoked",
            steward.label,
            request_id,
            reason=reason.strip(),
            steward={"id": steward.id, "name": steward.name, "department": steward.department},
            **evidence,
        )
        return self.state(request_id)

    def purge(self, actor: str, now: dt.datetime | None = None) -> list[str]:
        """Delete the files of every share that has ended (revoked, or past its period) and the consumer's
        profile — data minimisation once the purpose is over; the ledger keeps the manifest's hashes."""
        self.expire(now)
        done = []
        for s in self.ledger.states().values():
            if s.status not in ("revoked", "expired") or s.purged or s.manifest is None:
                continue
            request_id = s.id
            self.lake.delete("share", request_id)
            (self.folder / "profiles" / f"{request_id}.share").unlink(missing_ok=True)
            self.ledger.record(
                "share.purged",
                actor,
                request_id,
                status=s.status,
                content_sha256={t["dataset"]: t.get("content_sha256") for t in s.manifest["tables"]},
            )
            done.append(request_id)
        return sorted(done)

    def expire(self, now: dt.datetime | None = None) -> list[str]:
        """Record the expiry of every approved request whose period has ended (the service refuses them from
        the moment the period ends, recorded or not)."""
        now = now or dt.datetime.now(dt.UTC)
        due = [s for s in self.ledger.states().values() if s.status == "approved" and now >= s.expires_at]
        for s in due:
            self.ledger.record("share.expired", RULES, s.id, reason=f"period ended {s.expires_at.isoformat()}")
        return [s.id for s in due]
