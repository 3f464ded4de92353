"""The rejected-rows report of an import: each rejected row as it was in the file, plus why.

A person opens the report of a CSV or workbook import in a spreadsheet, fixes the cells and imports
the report itself: it is a CSV (UTF-8 with a byte-order mark, which Excel needs to read it as
UTF-8) under the file's own header and a `拒绝原因` column, which the importer ignores; the reason
names the row's line (the sheet's row number for a workbook). The report of a JSON Lines import
is JSON Lines: each rejected line's object with a `reason` key added.

Every cell is written so that a spreadsheet runs nothing (`resolver.core.csvcells`); the importer
restores cells of files holding the reason column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TextIO

import orjson

from resolver.bulk.columns import REASON_COLUMN, Shape
from resolver.bulk.slots import Rejection
from resolver.core.csvcells import cell, restore
from resolver.core.templates import TEMPLATE_INDEX

BOM = "\ufeff"


def default_path(source: Path, fmt: str) -> Path:
    return source.with_name(source.name + (".rejected.jsonl" if fmt == "jsonl" else ".rejected.csv"))


def _octets_shown(text: str) -> str:
    """The text, with each octet that was not of the file's encoding (read as a lone surrogate,
    resolver.bulk.encodings) shown as `\\xNN`: a report is UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


class Report:
    """Writes rejected rows to an open report file (new, or the start an earlier run wrote)."""

    def __init__(self, out: TextIO, shape: Shape | None, restoring: bool) -> None:
        self.out = out
        self.shape = shape
        self.restoring = restoring  # the file's cells are neutralised (a CSV the node wrote)
        self.writer = csv.writer(out) if shape is not None else None
        if self.writer is not None and shape is not None and out.tell() == 0:
            out.write(BOM)
            columns = list(shape.columns)
            if shape.reason_at is None:
                columns.append(REASON_COLUMN)
            self.writer.writerow([cell(c) for c in columns])

    def write(self, rejections: list[Rejection]) -> None:
        for line, handle, reason, original in rejections:
            because = f"第 {line} 行：{reason}"
            if self.writer is not None:
                self.writer.writerow(self._cells(handle, because, original))
            else:
                self.out.write(self._line(handle, because, original) + "\n")

    def _cells(self, handle: str, because: str, original: list[str] | str | bytes) -> list[str]:
        shape = self.shape
        assert shape is not None
        if isinstance(original, bytes):  # refused by the writer: the cells its values came from
            try:
                cells = shape.cells_of(handle, orjson.loads(original))
            except ValueError:
                cells = [cell(handle)] + [""] * (shape.width - 1)
        else:
            given = original if isinstance(original, list) else []
            cells = [cell(_octets_shown(restore(c) if self.restoring else c)) for c in given]
        width = shape.width
        extra = cells[width:]
        cells = cells[:width] + [""] * (width - len(cells))
        at = shape.reason_at
        if at is None:
            return [*cells, cell(because), *extra]
        cells[at] = cell(because)
        return cells + extra

    def _line(self, handle: str, because: str, original: list[str] | str | bytes) -> str:
        item: Any = None
        if isinstance(original, bytes):
            values = orjson.loads(original)
            item = {"handle": handle, "value": [v for v in values if v["index"] != TEMPLATE_INDEX]}
            version = next((v["data"]["value"] for v in values if v["index"] == TEMPLATE_INDEX), None)
            if version is not None:
                item["templateVersion"] = version
        elif isinstance(original, str):
            try:
                item = orjson.loads(original)
            except orjson.JSONDecodeError:
                item = None
        if not isinstance(item, dict):
            text = original if isinstance(original, str) else ""
            item = {"text": text.rstrip("\r\n")}
        item["reason"] = because
        return orjson.dumps(item).decode()
