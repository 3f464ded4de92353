"""Printable sheets of QR labels (一物一码) for identifiers (issue 18).

A4 pages in the label grids sold for office printers (3x8: 70 x 37 mm, 4x10: 52.5 x 29.7 mm),
each label holding a QR code of the identifier's scan page, the identifier and the product name.
PDF by reportlab (a well-kept PDF library; text in the Adobe-Song CID font every PDF reader
substitutes, so nothing is embedded and Chinese names need no font file on the node); QR codes
by zxing-cpp, whose C++ encoder (with the standard's mask selection) takes about 0.1 ms a code
where pure-Python encoders take 3 ms: 10,000 labels are a second or two of one thread, never of
the event loop (build_pdf runs in a thread, one sheet at a time per worker).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import zxingcpp
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

FONT = "STSong-Light"
MAX_LABELS = 10_000
QUIET = 4  # modules of white around a QR code


@dataclass(frozen=True)
class Grid:
    columns: int
    rows: int

    @property
    def per_page(self) -> int:
        return self.columns * self.rows


GRIDS = {"3x8": Grid(3, 8), "4x10": Grid(4, 10)}


@dataclass(frozen=True)
class Label:
    handle: str
    name: str  # the product name ('' when the identifier has none)
    target: str  # what the QR code holds: the identifier's scan page


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def qr_modules(text: str) -> list[bytes]:
    """The QR code of `text` (error correction M) as rows of modules, 1 for dark."""
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image: Any = zxingcpp.write_barcode_to_image(code, scale=1, add_quiet_zones=False)
    flat = memoryview(image).tobytes()  # one octet a module, row by row: 0 dark, 255 light
    size = math.isqrt(len(flat))
    return [bytes(1 if v < 128 else 0 for v in flat[y * size : (y + 1) * size]) for y in range(size)]


def _qr_operators(modules: list[bytes]) -> str:
    """PDF path operators filling the dark runs of each row, in module units."""
    out: list[str] = []
    for y, row in enumerate(modules):
        x, width = 0, len(row)
        while x < width:
            if row[x]:
                start = x
                while x < width and row[x]:
                    x += 1
                out.append(f"{start} {y} {x - start} 1 re")
            else:
                x += 1
    out.append("f")
    return "\n".join(out)


def _lines(text: str, font: str, size: float, width: float, most: int) -> list[str]:
    """`text` broken to `width` points, at most `most` lines (the last one cut with an ellipsis)."""
    lines: list[str] = []
    current = ""
    for character in text[: most * 80]:  # more than `most` lines hold, whatever the text's length
        if pdfmetrics.stringWidth(current + character, font, size) > width:
            lines.append(current)
            current = character
            if len(lines) > most:
                break
        else:
            current += character
    if current and len(lines) <= most:
        lines.append(current)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:-1] + "…"
    return lines


def build_pdf(labels: Sequence[Label], grid: Grid, title: str = "labels") -> bytes:
    """The sheets of `labels` (one at least), left to right, top to bottom."""
    assert labels
    font = _font()
    out = io.BytesIO()
    sheet = canvas.Canvas(out, pagesize=A4, pageCompression=1)
    sheet.setTitle(title)
    page_width, page_height = A4
    cell_width, cell_height = page_width / grid.columns, page_height / grid.rows
    pad = 2.5 * mm
    qr_side = min(cell_height - 2 * pad, cell_width * 0.48)
    text_x = pad + qr_side
    text_width = cell_width - text_x - pad
    size = 7.0 if grid.columns >= 4 else 8.0
    for number, label in enumerate(labels):
        at = number % grid.per_page
        if number and at == 0:
            sheet.showPage()
        column, row = at % grid.columns, at // grid.columns
        left = column * cell_width
        top = page_height - row * cell_height
        modules = qr_modules(label.target)
        scale = qr_side / (len(modules) + 2 * QUIET)
        # the QR code: module (x, y) from its top-left corner, y growing downwards, inside the
        # quiet zone the standard asks for (4 modules of white all round)
        qr_left = left + pad + QUIET * scale
        qr_top = top - (cell_height - qr_side) / 2 - QUIET * scale
        # raw path operators: a rect call per run of modules is 20x slower
        code: list[str] = sheet._code  # type: ignore[attr-defined]
        code.append(
            f"q {scale:.4f} 0 0 {-scale:.4f} {qr_left:.2f} {qr_top:.2f} cm\n{_qr_operators(modules)}\nQ"
        )
        sheet.setFont(font, size)
        y = top - pad - size
        for line in _lines(label.handle, font, size, text_width, 3):
            sheet.drawString(left + text_x, y, line)
            y -= size * 1.25
        y -= size * 0.4
        sheet.setFont(font, size + 1)
        for line in _lines(label.name, font, size + 1, text_width, 2):
            sheet.drawString(left + text_x, y, line)
            y -= (size + 1) * 1.25
    sheet.showPage()
    sheet.save()
    return out.getvalue()
