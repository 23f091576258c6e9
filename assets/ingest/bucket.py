"""Landing from an object-store bucket: departments upload to ``s3://bucket/prefix/<dataset landing>/``
instead of a shared folder (``LANDING_ROOT`` an ``s3://`` URI, ``LANDING_STORAGE_OPTIONS`` or the lake's
options for the endpoint and keys).

The collector's rules stay the ones of a folder — the names, patterns, hidden and temporary upload names,
subfolders, encodings, what is refused and why — because collection reads a local mirror of the bucket:
``Mirror.sync`` downloads what is new or changed (by the object's ETag and size) into the landing cache
(``<data>/landing-cache``), each object under a temporary upload name first and renamed when complete, with
the object's modification time; an object downloaded once is not downloaded again, so a file the collector
refused and moved away is not fetched back. The bucket is never written: what was delivered stays there.
A key that cannot be a file name of the mirror (``..``, an absolute path, a NUL) is not downloaded and is
reported with the reason.

The landing sensor only lists the bucket (``Mirror.fingerprints``): a tick costs one listing, no download.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

from assets.ingest.collector import Fingerprint
from assets.ingest.landing import UPLOADING, _matches, display_name
from lakehouse.lake import s3_store
from lakehouse.registry import Dataset

STATE = ".bucket-state"  # in the cache: per dataset, the objects mirrored (key → ETag and size)
PART = ".part"  # a download in progress (a temporary upload name: the collector waits for it)


def is_bucket(root: str | os.PathLike) -> bool:
    return str(root).startswith("s3://")


@dataclass
class Synced:
    downloaded: list[str] = field(default_factory=list)  # landing names fetched in this sync
    unchanged: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # key → why it was not downloaded


@dataclass(frozen=True)
class Mirror:
    """The bucket at ``uri`` mirrored into the folder ``cache``."""

    uri: str
    cache: Path
    storage_options: dict[str, str] = field(default_factory=dict)

    @cached_property
    def _store(self):
        return s3_store(self.uri, self.storage_options)

    def objects(self, dataset: Dataset) -> list[dict]:
        """The objects under the dataset's landing prefix: path (relative to the bucket root), size, ETag, time."""
        import obstore

        prefix = dataset.landing.strip("/") + "/"
        out = []
        for batch in obstore.list(self._store, prefix=prefix):
            out += batch
        return sorted(out, key=lambda o: o["path"])

    def fingerprints(self, dataset: Dataset) -> dict[str, Fingerprint]:
        """What a folder scan gives the sensor, from the listing alone: the objects the collector would take
        or refuse (top level, not hidden, not an upload in progress, matching the pattern), by landing name."""
        out = {}
        for o in self.objects(dataset):
            name = PurePosixPath(o["path"]).name
            top = PurePosixPath(o["path"]).parent == PurePosixPath(dataset.landing.strip("/"))
            if not top or name.startswith(".") or _uploading(name) or not _matches(name, dataset.pattern):
                continue
            stamp = int(o["last_modified"].timestamp() * 1e9)
            etag = int(hashlib.sha256(str(o.get("e_tag")).encode()).hexdigest()[:15], 16)
            out[display_name(o["path"])] = (o["size"], stamp, etag, 0)
        return out

    def sync(self, dataset: Dataset) -> Synced:
        """Download the dataset's new or changed objects into the cache (see the module doc)."""
        import obstore

        state_file = self.cache / STATE / f"{dataset.id}.json"
        state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
        out = Synced()
        for o in self.objects(dataset):
            key, tag = o["path"], [o.get("e_tag"), o["size"]]
            target = _target(self.cache, key)
            if isinstance(target, str):
                out.refused[key] = target
                continue
            if state.get(key) == tag:
                out.unchanged += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + PART)
            with part.open("wb") as f:
                for chunk in obstore.get(self._store, key).stream():
                    f.write(chunk)
            stamp = o["last_modified"].timestamp()
            os.utime(part, (stamp, stamp))
            os.replace(part, target)
            state[key] = tag
            out.downloaded.append(display_name(key))
            state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = state_file.with_name(state_file.name + PART)
            tmp.write_text(json.dumps(state, ensure_ascii=False, sort_keys=True), encoding="utf-8")
            os.replace(tmp, state_file)  # after each object: a crash mid-sync fetches only the rest again
        return out


def _uploading(name: str) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(name, g) for g in UPLOADING)


def _target(cache: Path, key: str) -> Path | str:
    """Where an object lands in the mirror, or why it cannot."""
    if "\x00" in key or key.startswith("/") or "\\" in key:
        return "the key is not a relative file name"
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "the key has an empty, '.' or '..' segment"
    return cache.joinpath(*parts)
