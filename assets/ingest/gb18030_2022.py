"""The ``gb18030-2022`` codec: GB 18030 as its 2022 edition maps it.

Python's ``gb18030`` codec implements the 2005 table, which sends 24 two-byte codes to the private-use area;
GB 18030-2022 maps them to standard characters (e.g. ``FE51`` → 𠂇 U+20087, ``A6D9`` → ︐ U+FE10), and that is
what current encoders write (glibc's iconv on these machines does). This codec decodes with Python's table,
then replaces those private-use characters by the 2022 ones; encoding is Python's (the 2005 four-byte forms
of these characters, which the 2022 edition still decodes). The table was checked against glibc's iconv:
``printf '\\U00020087' | iconv -f UTF-8 -t GB18030`` writes ``fe51``.

Registered on import; ``codecs.lookup("gb18030-2022")`` then works for Python's I/O and for Arrow's CSV reader,
which transcodes through Python codecs.
"""

from __future__ import annotations

import codecs
import re

NAME = "gb18030-2022"

# GB 18030-2022 two-byte code → the standard character it now maps to (the 2005 table: private use)
_CHANGED = {
    "fe51": "\U00020087",
    "fe52": "\U00020089",
    "fe53": "\U000200cc",
    "fe6c": "\U000215d7",
    "fe76": "\U0002298f",
    "fe91": "\U000241fe",
    "fe59": "\u9fb4",
    "fe61": "\u9fb5",
    "fe66": "\u9fb6",
    "fe67": "\u9fb7",
    "fe6d": "\u9fb8",
    "fe7e": "\u9fb9",
    "fe90": "\u9fba",
    "fea0": "\u9fbb",
    "a6d9": "\ufe10",
    "a6db": "\ufe11",
    "a6da": "\ufe12",
    "a6dc": "\ufe13",
    "a6dd": "\ufe14",
    "a6de": "\ufe15",
    "a6df": "\ufe16",
    "a6ec": "\ufe17",
    "a6ed": "\ufe18",
    "a6f3": "\ufe19",
}
# private-use character Python's 2005 table yields → the 2022 character
TRANSLATION = {ord(bytes.fromhex(code).decode("gb18030")): char for code, char in _CHANGED.items()}
PAIRS = tuple((chr(k), v) for k, v in TRANSLATION.items())
PATTERN = "[" + "".join(chr(k) for k in TRANSLATION) + "]"  # any of those private-use characters


# the byte pairs of those codes, possibly misaligned: a cheap test on the input before any translation
_HINT = re.compile(rb"\xfe[\x51-\xa0]|\xa6[\xd9-\xf3]")


def _fix(text: str, data) -> str:
    """Translate only text whose bytes may hold one of the 24 codes: a byte search runs at memory speed, a
    translation character by character; almost no delivery has one."""
    return text.translate(TRANSLATION) if _HINT.search(data) else text


class _IncrementalDecoder(codecs.IncrementalDecoder):
    def __init__(self, errors: str = "strict"):
        super().__init__(errors)
        self._inner = codecs.getincrementaldecoder("gb18030")(errors)

    def decode(self, data, final: bool = False) -> str:
        return _fix(self._inner.decode(data, final), bytes(data))

    def reset(self) -> None:
        self._inner.reset()

    def getstate(self):
        return self._inner.getstate()

    def setstate(self, state) -> None:
        self._inner.setstate(state)


class _StreamReader(codecs.StreamReader):
    def decode(self, data, errors: str = "strict"):
        text, consumed = codecs.getdecoder("gb18030")(data, errors)
        return _fix(text, bytes(data)), consumed


_gb = codecs.lookup("gb18030")
_INFO = codecs.CodecInfo(
    name=NAME,
    encode=_gb.encode,
    decode=lambda data, errors="strict": (
        codecs.getdecoder("gb18030")(data, errors)[0].translate(TRANSLATION),
        len(data),
    ),
    incrementalencoder=_gb.incrementalencoder,
    incrementaldecoder=_IncrementalDecoder,
    streamreader=_StreamReader,
    streamwriter=_gb.streamwriter,
)


def _search(name: str):
    return _INFO if name.replace("_", "-").lower() == NAME else None


codecs.register(_search)
