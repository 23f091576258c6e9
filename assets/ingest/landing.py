"""What is in a dataset's landing folder, and what collection does with each entry.

Every entry gets exactly one disposition, so nothing in landing is passed over in silence:

- ``collect``: a regular file directly in the folder whose name matches the registered pattern (letter
  case aside: ``.CSV`` is a CSV);
- ``refuse``: a symbolic link (never followed: it could point anywhere on the machine; the link itself is
  moved to the rejected area with its reason);
- ``wait``: an upload in progress. The landing convention is a temporary name (``*.part``, ``*.tmp``,
  ``*.uploading``, ``*.crdownload``) renamed to the final name when complete (an Office lock file ``~$…``
  waits too); and, for writers that do not follow it, a file modified within the last ``settle_seconds``
  (``SHUCANG_SETTLE_SECONDS``, 10 s by default) waits until its size and time have stood still that long;
- ``ignore``: a hidden file (``.…``), a file in a subfolder, something that is not a regular file (a pipe,
  a socket), or a name that does not match the pattern (e.g. ``.xls`` where ``*.xlsx`` is registered) —
  left in place, recorded with the reason.

Names are bytes on Linux: a file name that is not UTF-8 (a GBK name unzipped from a Windows archive) is
shown decoded as GB18030 when that works, else with its bytes escaped; the file itself is handled by its
real path. Plain code, free of Dagster.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from assets.ingest.rejection import Rejection
from lakehouse.registry import Dataset

UPLOADING = ("*.part", "*.tmp", "*.uploading", "*.crdownload", "~$*")


@dataclass(frozen=True)
class Entry:
    path: Path  # the real path (a non-UTF-8 name keeps its bytes, surrogate-escaped)
    name: str  # relative to the landing root, as text for logs and provenance
    disposition: str  # collect | refuse | wait | ignore
    reason: Rejection | None = None  # why, for refuse / wait / ignore

    def lstat(self) -> os.stat_result:
        return self.path.lstat()


def display_name(relative: str) -> str:
    """A relative path as text: UTF-8 as it is; other bytes decoded as GB18030 where they are valid
    (a Windows archive's names), else shown escaped (``\\xb9``)."""
    raw = os.fsencode(relative)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def _walk(folder: Path, depth: int) -> Iterator[tuple[os.DirEntry, int]]:
    with os.scandir(folder) as it:
        for e in sorted(it, key=lambda e: os.fsencode(e.name)):
            yield e, depth
            if e.is_dir(follow_symlinks=False):
                yield from _walk(Path(e.path), depth + 1)


def entries(dataset: Dataset, landing_root: Path, settle_seconds: float = 0.0, now: float | None = None) -> list[Entry]:
    """Every entry of the dataset's landing folder (subfolders included), with its disposition."""
    now = time.time() if now is None else now
    folder = landing_root / dataset.landing
    if folder.is_symlink():
        return [_entry(folder, landing_root, "refuse", _why("symlink", "the landing folder is a link"))]
    if not folder.is_dir():
        return []
    out = []
    for e, depth in _walk(folder, 0):
        path = Path(e.path)
        if e.is_symlink():
            out.append(_entry(path, landing_root, "refuse", _why("symlink", "a link is never followed")))
        elif e.is_dir(follow_symlinks=False):
            continue  # its files are entries of their own
        elif not stat.S_ISREG(e.stat(follow_symlinks=False).st_mode):
            out.append(_entry(path, landing_root, "ignore", _why("not_regular", "not a regular file")))
        elif depth > 0:
            where = f"in subfolder {display_name(str(path.parent.relative_to(folder)))}"
            out.append(_entry(path, landing_root, "ignore", _why("subfolder", where)))
        elif any(fnmatch.fnmatchcase(e.name, g) for g in UPLOADING):
            out.append(_entry(path, landing_root, "wait", _why("uploading", "a temporary upload name")))
        elif e.name.startswith("."):
            out.append(_entry(path, landing_root, "ignore", _why("hidden", "a hidden (dot) file")))
        elif not _matches(e.name, dataset.pattern):
            detail = f"registered pattern {dataset.pattern}"
            out.append(_entry(path, landing_root, "ignore", _why("pattern", detail)))
        elif settle_seconds and now - max(e.stat(follow_symlinks=False).st_mtime, 0) < settle_seconds:
            detail = f"modified within the last {settle_seconds:g} s"
            out.append(_entry(path, landing_root, "wait", _why("settling", detail)))
        else:
            out.append(_entry(path, landing_root, "collect"))
    return out


def _entry(path: Path, landing_root: Path, disposition: str, reason: Rejection | None = None) -> Entry:
    return Entry(path, display_name(path.relative_to(landing_root).as_posix()), disposition, reason)


def _why(code: str, detail: str) -> Rejection:
    return Rejection(code, detail, "file", None)
