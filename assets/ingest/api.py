"""Collect a dataset from a data platform's interface (接口): a paginated JSON endpoint, read with a token.

Each request sends the cursor where the last page ended (none at the very start) and the page size, with
``Authorization: Bearer <token>``. A page is an object holding the items, the cursor after them and whether
more follow. Every ``pages_per_commit`` pages (and the last) land as one Delta commit of raw carrying the
cursor after them: a crash resumes from the last committed cursor — a page already landed is not requested
again, a page not landed is. The cursor after the last page is where the next run starts (a change feed:
items changed meanwhile come again, as later versions of the same item; std keeps the latest).

Faults are the network's, and are retried per request with exponential backoff and jitter, up to
``max_attempts``: a timeout, a dropped connection, 5xx, and 429 (after the ``Retry-After`` the server asks
for, capped). A refused token (401/403) or another 4xx is not retried — it is a clear error naming the
endpoint and status, and the run fails with nothing half-landed (pages of earlier commits stay landed, their
cursor recorded). An item without its key, or a page that is not the agreed shape, refuses the run the same
way: what came before it landed, the rest waits at the source.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import polars as pl

from assets.ingest.collector import Collector, CollectResult, FileOutcome
from assets.ingest.database import VersionedLanding, versioned_partitioning
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.connections import redacted, token_of, url_of
from lakehouse.registry import Dataset

RETRY_AFTER_CAP = 60.0  # seconds: a server asking for longer gets the next run instead


class InterfaceError(RuntimeError):
    """A fault that retrying did not cure, or one no retry can (a refused token): says what and where."""


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class ApiCollector(VersionedLanding, Collector):
    """One collection run of an interface source."""

    def __init__(
        self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None, sleep=time.sleep
    ):
        assert dataset.api is not None, f"{dataset.id} is not an interface source"
        super().__init__(dataset, lake, None, None, batch_id, run_id, now)  # type: ignore[arg-type]
        self.partition_by = versioned_partitioning(dataset)
        self.api = dataset.api
        self.base = url_of(self.api.connection, environ).rstrip("/")
        self.token = token_of(self.api.connection, environ)
        self.label = f"api:{self.api.connection}{self.api.path}"
        self.sleep = sleep  # the tests' clock
        self.requests = 0  # every HTTP request made, retries included
        self.retries: dict[str, int] = {}  # fault → times retried

    # --- one page ----------------------------------------------------------------------------------------------
    def _url(self, cursor: str | None) -> str:
        query = {self.api.page_size_param: str(self.api.page_size)}
        if cursor is not None:
            query[self.api.cursor_param] = cursor
        return f"{self.base}{self.api.path}?{urllib.parse.urlencode(query)}"

    def page(self, cursor: str | None) -> dict:
        """One page, with retries; raises InterfaceError when the faults outlast them or cannot be retried."""
        url = self._url(cursor)
        shown = redacted(url)
        for attempt in range(1, self.api.max_attempts + 1):
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            )
            self.requests += 1
            wait = None
            try:
                with urllib.request.urlopen(request, timeout=self.api.timeout_seconds) as response:
                    body = response.read()
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise FileRejected(
                        Rejection("malformed_json", f"{shown}: the page is not JSON ({exc})", "page", 0)
                    ) from None
            except urllib.error.HTTPError as exc:
                if exc.code == 429:
                    fault = "429"
                    wait = _retry_after(exc.headers.get("Retry-After"))
                elif exc.code >= 500:
                    fault = str(exc.code)
                else:  # 401, 403, 404, 400: retrying cannot help
                    raise InterfaceError(
                        f"{shown}: HTTP {exc.code} {exc.reason}"
                        + (" — the token was refused (check the connection's token)" if exc.code in (401, 403) else "")
                    ) from None
            except TimeoutError:
                fault = "timeout"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                    fault = "timeout"
                else:
                    fault = "connection"
            except (ConnectionError, http.client.HTTPException):
                fault = "connection"
            self.retries[fault] = self.retries.get(fault, 0) + 1
            if attempt == self.api.max_attempts:
                raise InterfaceError(f"{shown}: {fault} on all {attempt} attempts")
            if wait is None or wait > RETRY_AFTER_CAP:
                wait = min(RETRY_AFTER_CAP, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _items(self, page: dict, cursor: str | None) -> tuple[pl.DataFrame, str | None, bool]:
        api = self.api
        items = page.get(api.items) if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise FileRejected(
                Rejection(
                    "malformed_json", f"page after cursor {cursor!r}: no list of objects in {api.items!r}", "page", 0
                )
            )
        missing = [n for i, item in enumerate(items) for n in api.key if item.get(n) is None][:1]
        if missing:
            raise FileRejected(
                Rejection(
                    "missing_columns", f"an item without its key {missing[0]!r} after cursor {cursor!r}", "page", 0
                )
            )
        fields = [self.dataset.db_column(c.name) for c in self.dataset.columns]
        rows = [
            {
                **{c.name: _text(item.get(f)) for c, f in zip(self.dataset.columns, fields, strict=True)},
                **{f"__k{i}": _text(item[k]) for i, k in enumerate(api.key)},
                "_change": "upsert",
            }
            for item in items
        ]
        names = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(len(api.key))] + ["_change"]
        frame = pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row")
        return frame, page.get(api.next_cursor), bool(page.get(api.has_more))

    # --- a run -------------------------------------------------------------------------------------------------
    def run(self) -> CollectResult:
        result, last = self.begin()
        cursor = json.loads(last["source_position"]).get("cursor") if last else None
        pending: list[pl.DataFrame] = []
        start = cursor
        error: Exception | None = None
        try:
            while True:
                frame, following, more = self._items(self.page(cursor), cursor)
                if frame.height:
                    pending.append(frame)
                cursor = following if following is not None else cursor
                if pending and (len(pending) >= self.api.pages_per_commit or not more):
                    result.outcomes.append(self._commit(pending, start, cursor))
                    pending, start = [], cursor
                if not more:
                    if cursor != start:  # pages without items moved the cursor: record where they ended
                        result.outcomes.append(self._commit([], start, cursor))
                    break
        except FileRejected as exc:
            self.refused(result, exc)
        except InterfaceError as exc:
            error = exc
        if pending and error is not None:  # complete pages before the fault: landed, their cursor kept
            result.outcomes.append(self._commit(pending, start, cursor))
        self.finish(result)
        if error is not None:
            raise error
        return result

    def _commit(self, frames: list[pl.DataFrame], start: str | None, cursor: str | None) -> FileOutcome:
        names = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(len(self.api.key))] + ["_change"]
        changes = pl.concat(frames) if frames else pl.DataFrame(schema={n: pl.String for n in names})
        span = f"cursor {start or 'start'} → {cursor}"
        return self._land(changes, len(self.api.key), {"cursor": cursor}, {}, span)


def _retry_after(value: str | None) -> float | None:
    """Seconds the server asks to wait (a number, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None
