"""What the page of a scanned code reads besides the record: its enterprise's name, the handle's
times and its template's display names."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from resolver.store import enterprises
from resolver.store.statements import Reads


class PageExtras(NamedTuple):
    created_at: datetime
    updated_at: datetime
    template_name: str | None  # the template's display name (Chinese), when it has one
    template_name_en: str | None


async def enterprise_name(db: Reads, enterprise_id: int) -> str | None:
    row = await enterprises.enterprise(db, enterprise_id)
    return None if row is None else row.name


async def page_extras(db: Reads, key: str, template: tuple[str, str] | None = None) -> PageExtras | None:
    """When a handle (by key) was registered and last changed, and the display names of
    `template` (prefix, version: the one the page shows), in one read; None when the handle is
    not stored."""
    prefix, version = template if template is not None else (None, None)
    rows = await db.fetch_named("scan_extras", key, prefix, version)
    if not rows:
        return None
    row = rows[0]
    return PageExtras(row["created_at"], row["updated_at"], row["template_name"], row["template_name_en"])
