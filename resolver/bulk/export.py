"""`resolver export --prefix P`: every handle under a prefix, in a format `resolver import` reads
back unchanged: JSON Lines, or for people a CSV (UTF-8 with a byte-order mark, as Excel needs)
or an Excel workbook with a column per template item (`resolver.bulk.columns`)."""

from __future__ import annotations

import csv
from typing import Any, TextIO

import orjson

from resolver.bulk.columns import ExportShape
from resolver.bulk.report import BOM
from resolver.bulk.sheets import SheetWriter
from resolver.config import Config
from resolver.core.templates import TEMPLATE_INDEX, template_version_of
from resolver.store import imports
from resolver.store.connections import Connection


async def export(config: Config, conn: Connection, prefix: str, out: TextIO, fmt: str = "jsonl") -> int:
    """Write every handle under a prefix, in the format `import` reads; returns the count.

    CSV cells go through `csvcells` (nothing a spreadsheet runs, no raw control characters),
    which the importer undoes for the files the node writes."""
    from resolver.core.handles import check_prefix

    folded = check_prefix(prefix, config.limits)
    count = 0
    if fmt == "jsonl":
        async for row in imports.prefix_handles(conn, folded):
            values = orjson.loads(row.values)
            version = template_version_of(values)
            item: dict[str, Any] = {
                "handle": row.handle,
                "value": [v for v in values if v["index"] != TEMPLATE_INDEX],
            }
            if version:
                item["templateVersion"] = version
            out.write(orjson.dumps(item).decode() + "\n")
            count += 1
        return count
    templates = await imports.all_templates(conn)
    # Two passes over one snapshot: the first finds the columns, the second writes the rows.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        columns = ExportShape(templates)
        async for row in imports.prefix_handles(conn, folded):
            columns.add(row.handle, orjson.loads(row.values))
        shape = columns.shape()
        if fmt == "xlsx":
            sheet = SheetWriter(prefix)
            sheet.append(shape.columns)
            async for row in imports.prefix_handles(conn, folded):
                sheet.append(shape.cells_of(row.handle, orjson.loads(row.values), neutralise=False))
                count += 1
            out.flush()
            sheet.save(out.buffer)
            return count
        out.write(BOM)
        writer = csv.writer(out)
        writer.writerow(shape.columns)
        async for row in imports.prefix_handles(conn, folded):
            writer.writerow(shape.cells_of(row.handle, orjson.loads(row.values)))
            count += 1
    return count
