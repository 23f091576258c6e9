"""Alerts: failed runs, failed checks (blocking gates, overdue datasets, rejected deliveries) sent to the
channels an operator configures — a webhook (JSON) and e-mail over SMTP — once per incident, and a notice
when it recovers.

An incident is open while the latest run of a job failed, or while the latest evaluation of an asset check
failed; it recovers when a later run succeeds or a later evaluation passes. The alerts sensor
(``sensors/alerts.py``) compares the open incidents with those it already announced (its cursor) and sends
only the changes, so a failure that stays failed alerts once, not on every tick.

Channels come from the environment: ``SHUCANG_ALERT_WEBHOOK`` (a URL that receives a JSON POST),
``SHUCANG_ALERT_SMTP`` (``host:port``), ``SHUCANG_ALERT_MAIL_FROM`` and ``SHUCANG_ALERT_MAIL_TO``
(comma-separated).
"""

from __future__ import annotations

import json
import os
import smtplib
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage

import dagster as dg


@dataclass(frozen=True)
class Incident:
    key: str  # run:<job> | check:<asset>/<check>
    kind: str  # run | check
    title: str
    detail: str
    severity: str  # ERROR | WARN
    since: float  # when the failing run ended, or the failing evaluation was recorded


@dataclass(frozen=True)
class Channels:
    webhook: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    mail_from: str = "shucang@localhost"
    mail_to: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env=None) -> Channels:
        env = os.environ if env is None else env
        host, _, port = (env.get("SHUCANG_ALERT_SMTP") or "").partition(":")
        to = [a.strip() for a in (env.get("SHUCANG_ALERT_MAIL_TO") or "").split(",") if a.strip()]
        return cls(
            webhook=env.get("SHUCANG_ALERT_WEBHOOK") or None,
            smtp_host=host or None,
            smtp_port=int(port or 25),
            mail_from=env.get("SHUCANG_ALERT_MAIL_FROM") or "shucang@localhost",
            mail_to=to,
        )

    @property
    def configured(self) -> bool:
        return bool(self.webhook or (self.smtp_host and self.mail_to))


def incidents(instance: dg.DagsterInstance, check_keys) -> list[Incident]:
    """The incidents open now: jobs whose latest run failed, checks whose latest evaluation failed."""
    out, latest = [], {}
    for run in instance.get_runs(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS]), limit=500
    ):
        latest.setdefault(run.job_name, run)  # newest first
    for job, run in sorted(latest.items()):
        if run.status == dg.DagsterRunStatus.FAILURE:
            record = instance.get_run_record_by_id(run.run_id)
            ended = record.end_time if record and record.end_time else 0.0
            out.append(Incident(f"run:{job}", "run", f"run of {job} failed", f"run {run.run_id}", "ERROR", ended))
    for key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = instance.get_latest_asset_check_evaluation_record(key)
        evaluation = record.evaluation if record is not None else None
        if evaluation is None or evaluation.passed:
            continue
        severity = evaluation.severity.value if evaluation.severity else "ERROR"
        what = f"{key.asset_key.to_user_string()} {key.name}"
        detail = evaluation.description or str(
            {k: getattr(v, "value", v) for k, v in list((evaluation.metadata or {}).items())[:5]}
        )
        out.append(
            Incident(
                f"check:{key.asset_key.to_user_string()}/{key.name}",
                "check",
                f"check {what} failed",
                detail[:1000],
                severity,
                record.create_timestamp,
            )
        )
    return out


def message(status: str, incident: dict) -> dict:
    """What is sent: ``status`` is ``open`` or ``recovered``."""
    verb = "🔴 " if status == "open" else "✅ recovered: "
    return {"status": status, "summary": verb + incident["title"], **incident}


def send(channels: Channels, payload: dict) -> list[str]:
    """Deliver one alert to every configured channel; returns the errors (empty: delivered everywhere)."""
    errors = []
    if channels.webhook:
        body = json.dumps(payload, ensure_ascii=False).encode()
        request = urllib.request.Request(channels.webhook, body, {"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 — an operator-set URL
                if answer.status >= 300:
                    errors.append(f"webhook answered {answer.status}")
        except OSError as exc:
            errors.append(f"webhook: {exc}")
    if channels.smtp_host and channels.mail_to:
        mail = EmailMessage()
        mail["Subject"] = f"[shucang] {payload['summary']}"
        mail["From"], mail["To"] = channels.mail_from, ", ".join(channels.mail_to)
        mail.set_content(json.dumps(payload, ensure_ascii=False, indent=1))
        try:
            with smtplib.SMTP(channels.smtp_host, channels.smtp_port, timeout=5) as smtp:
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            errors.append(f"e-mail: {exc}")
    return errors


def tick(
    instance: dg.DagsterInstance, check_keys, cursor: str | None, channels: Channels
) -> tuple[str, list[dict], list[str]]:
    """One round: announce incidents that opened, and recoveries of those announced before. Returns the new
    cursor, what was sent, and delivery errors (an undelivered change is tried again next round)."""
    announced: dict[str, dict] = json.loads(cursor or "{}")
    current = {i.key: asdict(i) for i in incidents(instance, check_keys)}
    sent, errors, state = [], [], {}
    for key, incident in current.items():
        if key in announced:
            state[key] = announced[key]
            continue
        problems = send(channels, message("open", incident))
        errors += problems
        if not problems:
            state[key] = incident
            sent.append(message("open", incident))
    for key, incident in announced.items():
        if key in current:
            continue
        problems = send(channels, message("recovered", incident))
        errors += problems
        if problems:
            state[key] = incident  # try the recovery notice again next round
        else:
            sent.append(message("recovered", incident))
    return json.dumps(state, sort_keys=True), sent, errors
