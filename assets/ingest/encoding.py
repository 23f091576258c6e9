"""One pass over a delivered file: content hash, size, and which text encoding it really is.

Detection is by strict decoding, not guessing: a file is UTF-8 (with or without BOM) if it decodes as
UTF-8, else GB18030 (a superset of GBK and GB 2312) if it decodes as that; otherwise it is refused.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from pathlib import Path

from assets.ingest.rejection import FileRejected, Rejection

CHUNK = 8 << 20
BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class Sniff:
    sha256: str
    size: int
    encoding: str | None  # 'utf-8', 'utf-8-sig', 'gb18030'; None for binary formats
    ends_with_newline: bool


def _decodes(path: Path, decoder_name: str) -> int | None:
    """None if the whole file decodes; otherwise the byte offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(decoder_name)("strict")
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


def sniff(path: Path, text: bool) -> Sniff:
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict") if text else None
    utf8_bad_at: int | None = None
    size, last, head = 0, b"", b""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if not head:
                head = chunk[:3]
            if decoder is not None and utf8_bad_at is None:
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    utf8_bad_at = size + exc.start
            size += len(chunk)
            last = chunk[-1:]
    if decoder is not None and utf8_bad_at is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_bad_at = size
    encoding = None
    if text:
        if utf8_bad_at is None:
            encoding = "utf-8-sig" if head == BOM else "utf-8"
        elif (gb_bad_at := _decodes(path, "gb18030")) is None:
            encoding = "gb18030"
        else:
            raise FileRejected(
                Rejection(
                    "encoding",
                    f"invalid UTF-8 at byte {utf8_bad_at}, invalid GB18030 at byte {gb_bad_at}",
                    f"byte {min(utf8_bad_at, gb_bad_at)}",
                    None,
                )
            )
    return Sniff(digest.hexdigest(), size, encoding, last in (b"\n", b"\r"))
