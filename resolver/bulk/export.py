"""`resolver export --prefix P`: every handle under a prefix, in a format `resolver import` reads."""

from __future__ import annotations

import csv
from typing import Any, TextIO

import orjson

from resolver.config import Config
from resolver.core.csvcells import cell, json_cell
from resolver.core.templates import TEMPLATE_INDEX, template_version_of
from resolver.store import imports
from resolver.store.connections import Connection


async def export(config: Config, conn: Connection, prefix: str, out: TextIO, fmt: str = "jsonl") -> int:
    """Write every handle under a prefix, in the format `import` reads; returns the count.

    CSV cells go through `csvcells` (nothing a spreadsheet runs, no raw control characters),
    which the importer undoes for this format."""
    from resolver.core.handles import check_prefix

    folded = check_prefix(prefix, config.limits)
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["handle", "values"])
    async for row in imports.prefix_handles(conn, folded):
        values = orjson.loads(row.values)
        version = template_version_of(values)
        plain = [v for v in values if v["index"] != TEMPLATE_INDEX]
        if writer:
            writer.writerow([cell(row.handle), json_cell(orjson.dumps(plain))])
        else:
            item: dict[str, Any] = {"handle": row.handle, "value": plain}
            if version:
                item["templateVersion"] = version
            out.write(orjson.dumps(item).decode() + "\n")
        count += 1
    return count
