"""Data templates of prefixes, read as the domain's `Template`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from resolver.core.templates import Template, parse_template
from resolver.store.statements import Reads, Writes


def _template(row: Any) -> Template:
    return parse_template(
        {
            "version": row["version"],
            "industryCodes": list(row["industry_codes"]),
            "items": orjson.loads(row["items"]),
            "templateName": row["name"],
            "templateNameEn": row["name_en"],
        },
        row["prefix"],
    )


def _items(template: Template) -> str:
    return orjson.dumps([i.to_json() for i in template.items]).decode()


async def insert_template(tx: Writes, template: Template) -> bool:
    """Store a new version; False when the prefix has that version already."""
    created = await tx.fetch_named(
        "template_insert",
        template.prefix,
        template.version,
        list(template.industry_codes),
        _items(template),
        template.name,
        template.name_en,
    )
    return bool(created)


async def lock_template(tx: Writes, prefix: str, version: str) -> Template | None:
    """A version of a prefix's template, locked until the transaction ends."""
    row = await tx.fetchrow_named("template_lock", prefix, version)
    return None if row is None else _template(row)


async def update_template(tx: Writes, template: Template) -> None:
    await tx.execute_named(
        "template_update",
        template.prefix,
        template.version,
        list(template.industry_codes),
        _items(template),
        template.name,
        template.name_en,
    )


async def templates_of(db: Reads, prefixes: Sequence[str]) -> list[Template]:
    """Every version of these prefixes' templates, by prefix (descending) then version."""
    return [_template(r) for r in await db.fetch_named("templates_list", list(prefixes))]
