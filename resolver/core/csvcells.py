"""The cells of the CSV files the node writes (rejected-rows reports, `export --format csv`).

Such a file is opened in Excel, WPS or LibreOffice, and a cell that starts with = + - @ tab or CR
is run there as a formula (CSV injection: `=HYPERLINK(...)` sends what the sheet shows elsewhere).
Such a cell is written with a single quote in front, as OWASP advises: the spreadsheet shows it as
text. A cell that starts with a quote gets one more, so that the rule can be undone exactly:
`restore` takes one leading quote off, and `restore(neutralise(text)) == text` for every text.
The importer restores only the files export writes (`handle,values`): in an enterprise's own CSV a
leading quote is data.

Control characters (C0, DEL, C1) are not written raw: `visible` shows them as `\\xNN` (reports are
read, not imported back; handles hold none, every write path refuses them), and `json_cell`
writes them as the `\\u00NN` escapes JSON reads back as the same characters.
"""

from __future__ import annotations

import re

# What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_STARTS = frozenset("=+-@\t\r")
QUOTE = "'"
_NEEDS_QUOTE = frozenset((*FORMULA_STARTS, QUOTE))
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def neutralise(text: str) -> str:
    """The text as a cell a spreadsheet does not run: a quote in front of a formula start or a
    quote; any other text as it is."""
    return QUOTE + text if text[:1] in _NEEDS_QUOTE else text


def restore(text: str) -> str:
    """The text `neutralise` was given: one leading quote taken off."""
    return text[1:] if text[:1] == QUOTE else text


def visible(text: str) -> str:
    """The text with each control character shown as `\\xNN`."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def cell(text: str) -> str:
    """Any text as a cell of a file the node writes: control characters shown, then neutralised."""
    return neutralise(visible(text))


def json_cell(encoded: bytes) -> str:
    """Compact JSON as orjson writes it as a cell: control characters, which can only be inside
    its strings there, written as `\\u00NN` escapes; the JSON it reads back as is the same."""
    text = encoded.decode()
    # orjson escapes C0 itself but writes DEL and C1 (0xC2 0x80-0x9F in UTF-8) raw: two byte
    # searches spare the usual row a scan of its text.
    if b"\x7f" in encoded or b"\xc2" in encoded:
        text = _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return neutralise(text)
