"""Excel workbooks (.xlsx, as Excel and WPS save them) read and written with openpyxl.

A cell is read as the text the sheet shows: a number typed into Excel is a float there (`1001.0`
for 1001), a date a datetime; each becomes the text a person typed (`1001`, `2024-05-01`). Formulas
are read as the value Excel last computed (`data_only`), never as their source. Cells the node
writes are typed as strings, so that Excel keeps leading zeros and runs nothing.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the .xls of Excel 97-2003 (and WPS's .et)
OLD_EXCEL = "这是旧版 Excel（.xls）文件：请在 Excel 或 WPS 中另存为 .xlsx 或 “CSV UTF-8”后再导入"


def sniff(start: bytes) -> str | None:
    """'xlsx' for a workbook whatever its name, raises for an old .xls, None otherwise."""
    if start.startswith(ZIP_MAGIC):
        return "xlsx"
    if start.startswith(OLE_MAGIC):
        raise ValueError(OLD_EXCEL)
    return None


def text_of(value: Any) -> str:
    """A cell's value as the text the sheet shows."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class Workbook:
    """The rows of one sheet of a workbook: the first one, or the one `sheet` names."""

    def __init__(self, raw: IO[bytes], sheet: str | None) -> None:
        from openpyxl import load_workbook

        try:
            self.book = load_workbook(raw, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
            raise ValueError(f"不是有效的 .xlsx 文件：{exc}") from None
        names = self.book.sheetnames
        if sheet is None:
            self.sheet = self.book.worksheets[0]
        elif sheet in names:
            self.sheet = self.book[sheet]
        else:
            raise ValueError(f"工作表 {sheet} 不存在（这个文件有：{'、'.join(names)}）")
        self.rows_expected = self.sheet.max_row or 0
        # the rows as the file holds them, not padded to the size the sheet declares (a file of a
        # few kilobytes may declare 16,384 columns and have every row read that wide)
        self.sheet.reset_dimensions()
        self.row = 0

    def rows(self) -> Iterator[tuple[int, list[str] | str]]:
        """(row number, cells) of every row, the header first, each as wide as the header."""
        width = 0
        for number, values in enumerate(self.sheet.iter_rows(values_only=True), start=1):
            self.row = number
            cells = [text_of(v) for v in values]
            if number == 1:
                while cells and not cells[-1]:
                    cells.pop()
                width = len(cells)
            elif len(cells) < width:
                cells += [""] * (width - len(cells))  # a row whose last cells are empty is shorter
            yield number, cells
        self.book.close()

    def position(self, size: int) -> Callable[[], int]:
        """How far into the file the reading is, estimated from the rows read (a workbook is a
        zip archive: its byte offset says nothing)."""
        expected = max(self.rows_expected, 1)
        return lambda: min(size, size * self.row // expected)


def header_of(raw: IO[bytes], sheet: str | None) -> list[str]:
    """The first row of the sheet."""
    book = Workbook(raw, sheet)
    first = next(book.rows(), None)
    book.book.close()
    return first[1] if first is not None and isinstance(first[1], list) else []


class SheetWriter:
    """A workbook of one sheet whose every cell is a string, written row by row (openpyxl's
    write-only mode keeps the rows in a temporary file, not in memory)."""

    def __init__(self, title: str) -> None:
        from openpyxl import Workbook as NewWorkbook

        self.book = NewWorkbook(write_only=True)
        self.sheet = self.book.create_sheet(title[:31] or "Sheet1")

    def append(self, cells: Sequence[str]) -> None:
        from openpyxl.cell import WriteOnlyCell

        typed = []
        for text in cells:
            written = WriteOnlyCell(self.sheet, value=text)
            written.data_type = "s"  # text, never a formula (openpyxl takes "=..." for one)
            typed.append(written)
        self.sheet.append(typed)

    def save(self, out: IO[bytes]) -> None:
        self.book.save(out)
