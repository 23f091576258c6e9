"""One pass over a delivered file: content hash, size, and which text encoding it really is.

Detection is by strict decoding and plausibility, not guessing: a file is UTF-8 (with or without BOM) if it
decodes as UTF-8 and reads as Chinese text would, else GB18030 (a superset of GBK and GB 2312, decoded by
the 2022 mapping) if it decodes as that; a file that is neither, both with different text, or UTF-8 with a
part in another encoding is refused with the byte offset.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from assets.ingest import gb18030_2022
from assets.ingest.rejection import FileRejected, Rejection

CHUNK = 8 << 20
BOM = codecs.BOM_UTF8
GB18030 = gb18030_2022.NAME  # decoded by the 2022 mapping


@dataclass(frozen=True)
class Sniff:
    sha256: str
    size: int
    encoding: str | None  # 'utf-8', 'utf-8-sig', 'gb18030-2022'; None for binary formats
    ends_with_newline: bool


def _decodes(path: Path, decoder_name: str) -> int | None:
    """None if the whole file decodes; otherwise the byte offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(decoder_name)("strict")
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            pending = decoder.getstate()[0]  # decoded with the chunk: the error's offset counts them
            try:
                decoder.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                return offset - len(pending) + exc.start
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return offset
    return None


# Non-ASCII characters a Chinese delivery may hold in a Latin-range code point (U+0080–U+07FF): units, signs.
_LATIN_OK = set("°²³±×÷·µ§¹º‰¼½¾€£¥©®")
_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0003ffff]")


def _latin_class() -> str:
    """A regex class of U+0080–U+07FF without the signs in ``_LATIN_OK``, as ranges."""
    ranges, start = [], None
    for cp in range(0x80, 0x801):
        inside = cp < 0x800 and chr(cp) not in _LATIN_OK
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            ranges.append(f"\\u{start:04x}-\\u{cp - 1:04x}")
            start = None
    return "[" + "".join(ranges) + "]"


_IMPLAUSIBLE_LATIN = re.compile(_latin_class())


def _implausible_latin(text: str) -> re.Match | None:
    """The first Latin-range character that is not a sign a Chinese delivery uses (units, ×, °)."""
    return _IMPLAUSIBLE_LATIN.search(text)


def _last_boundary(data: bytes) -> int:
    """Where the last complete UTF-8 character of ``data`` ends: before a lead byte whose continuation bytes
    have not all arrived (the next chunk brings them)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII)
            need = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) - back if need > back else len(data)
    return len(data)


def _valid_utf8(data: bytes) -> bool:
    """Strict UTF-8 (no surrogates, no overlong forms, nothing above U+10FFFF), as Python's codec decides;
    validated by Arrow without copying the bytes."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.LargeStringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _first_bad(data: bytes) -> int | None:
    """The offset of the first byte Python's strict decoder refuses (None if it refuses none); ``data`` ends at a
    character's end (``_last_boundary``), so a character cut short inside it is refused where it starts."""
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(data, final=True)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def sniff(path: Path, text: bool, encodings: tuple[str, ...] = ("utf-8", "gb18030")) -> Sniff:
    """Hash the file and decide its encoding, among the ``encodings`` its source declares.

    UTF-8 when the whole file is strict UTF-8 — unless it holds no Chinese at all but Latin-range letters,
    and also reads as GB18030 (a short GBK file whose bytes happen to be valid UTF-8, 平衡 read as ƽĥ):
    that is refused as ambiguous. GB18030 (2022 mapping) when it is not UTF-8 — unless Chinese text was
    read as UTF-8 before the first bad byte: a UTF-8 file with a line in another encoding is refused as
    mixed, at that byte, instead of being decoded whole as GB18030 into mojibake."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")("strict") if text else None
    utf8_bad_at: int | None = None
    cjk_seen, latin_at = False, None
    size, last, head = 0, b"", b""
    carry = b""  # once Chinese was seen: the bytes of a character cut by the chunk's end
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            if len(head) < 3:
                head = (head + chunk)[:3]
            if decoder is not None and utf8_bad_at is None and cjk_seen:
                # the text decides nothing more (Latin letters beside Chinese are no ambiguity), only where it
                # stops being UTF-8: checked by Arrow on the bytes, many times faster than decoding them in Python
                start, data = size - len(carry), carry + chunk  # ``data`` at its offset in the file
                cut = _last_boundary(data)
                whole, carry = data[:cut], data[cut:]
                if not _valid_utf8(whole) and (bad := _first_bad(whole)) is not None:
                    utf8_bad_at = start + bad
            elif decoder is not None and utf8_bad_at is None:
                pending = decoder.getstate()[0]  # the decoder decodes these bytes with the chunk
                start = size - len(pending)
                try:
                    decoded = decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    utf8_bad_at = start + exc.start
                    decoded = (pending + chunk)[: exc.start].decode("utf-8", "ignore")
                if not decoded.isascii():
                    cjk_seen = cjk_seen or _CJK.search(decoded) is not None
                    if latin_at is None and (m := _implausible_latin(decoded)):
                        latin_at = start + len(decoded[: m.start()].encode("utf-8"))
                if cjk_seen and utf8_bad_at is None:
                    carry = decoder.getstate()[0]  # a character begun in this chunk, ended in the next
            size += len(chunk)
            last = chunk[-1:]
    if decoder is not None and utf8_bad_at is None:
        if cjk_seen:  # the fast path's last cut character: judged as the incremental decoder would
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            try:
                decoder.decode(carry, final=False)
            except UnicodeDecodeError as exc:
                utf8_bad_at = size - len(carry) + exc.start
        if utf8_bad_at is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_bad_at = size
    encoding = None
    if text:
        encoding = _decide(path, utf8_bad_at, cjk_seen, latin_at, head)
        family = "gb18030" if encoding == GB18030 else "utf-8"
        if family not in encodings:
            raise FileRejected(
                Rejection(
                    "encoding_undeclared", f"the file is {family}; the source declares {list(encodings)}", "file", None
                )
            )
    return Sniff(digest.hexdigest(), size, encoding, last in (b"\n", b"\r"))


def _decide(path: Path, utf8_bad_at: int | None, cjk_seen: bool, latin_at: int | None, head: bytes) -> str:
    if utf8_bad_at is None:
        if latin_at is not None and not cjk_seen and _decodes(path, "gb18030") is None:
            raise FileRejected(
                Rejection(
                    "encoding_ambiguous",
                    "valid UTF-8 with Latin letters and no Chinese, and valid GB18030 with other text",
                    f"byte {latin_at}",
                    None,
                )
            )
        return "utf-8-sig" if head == BOM else "utf-8"
    if cjk_seen:
        raise FileRejected(
            Rejection(
                "encoding_mixed",
                f"UTF-8 with Chinese text up to byte {utf8_bad_at}, then bytes that are not UTF-8",
                f"byte {utf8_bad_at}",
                None,
            )
        )
    if (gb_bad_at := _decodes(path, "gb18030")) is None:  # the same bytes are valid in both editions
        return GB18030
    raise FileRejected(
        Rejection(
            "encoding",
            f"invalid UTF-8 at byte {utf8_bad_at}, invalid GB18030 at byte {gb_bad_at}",
            f"byte {min(utf8_bad_at, gb_bad_at)}",
            None,
        )
    )
