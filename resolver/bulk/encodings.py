"""The text encoding of an import file, as spreadsheets save them.

Excel's "CSV UTF-8" starts with a byte-order mark; its plain "CSV" on Chinese Windows, and WPS's,
is GBK, which GB18030 (the national standard, a superset of GBK) decodes. So: a UTF-8 byte-order
mark means UTF-8 (the mark dropped); otherwise the start of the file (`SAMPLE` octets) decides:
UTF-8 when it decodes as UTF-8 or mostly does (more characters decoded than octets refused), else
GB18030 when it decodes as that, else UTF-8, whose errors then name their lines. `--encoding`
overrides the guess.

Rows are decoded with `surrogateescape`, so an octet that is not of the encoding does not stop
the reading: the row that holds it is refused, naming its line and suggesting `--encoding`
(`undecodable`), and the rows around it go on.
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

SAMPLE = 1 << 20  # octets looked at to choose the encoding
ERRORS = "surrogateescape"
_ESCAPED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of an octet it cannot decode


def known(name: str) -> str:
    """The codec's canonical name for `--encoding`; ValueError for a name Python does not know."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"不认识的编码 {name}（可用 utf-8、gb18030 等）") from None


def choose(raw: BinaryIO, override: str | None = None) -> str:
    """The encoding to read `raw` with (its position is left at the start)."""
    if override is not None:
        name = known(override)
        return "utf-8-sig" if name == "utf-8" else name  # a byte-order mark is never a cell's text
    start = raw.tell()
    sample = raw.read(SAMPLE)
    raw.seek(start)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    # final=False: a character cut at the end of the sample is not an error
    text = codecs.getincrementaldecoder("utf-8")(ERRORS).decode(sample, final=False)
    bad = len(_ESCAPED.findall(text))
    if not bad:
        return "utf-8-sig"
    # Mostly UTF-8 with a few rows pasted from elsewhere: read as UTF-8, so that those rows are
    # named, rather than as GB18030, which decodes nearly any octets and would turn the UTF-8 rows
    # into other characters without a word.
    decoded = sum(1 for character in text if character > "\x7f") - bad
    if decoded > bad:
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("gb18030")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "utf-8-sig"
    return "gb18030"


def undecodable(cells: list[str], line: int, encoding: str) -> str | None:
    """The refusal of a row holding octets that are not `encoding`, else None."""
    if not _ESCAPED.search("".join(cells)):  # one search a row (the common row has nothing)
        return None
    shown = "utf-8" if encoding == "utf-8-sig" else encoding
    other = "gb18030" if shown == "utf-8" else "utf-8"
    return (
        f"第 {line} 行含有不是 {shown} 编码的字节：文件的编码可用 --encoding 指定（例如 --encoding {other}）"
    )
