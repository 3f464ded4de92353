"""What the page of a scanned code reads besides the record: its enterprise's name and the
handle's times."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from resolver.store import enterprises
from resolver.store.statements import Reads


class HandleTimes(NamedTuple):
    created_at: datetime
    updated_at: datetime


async def enterprise_name(db: Reads, enterprise_id: int) -> str | None:
    row = await enterprises.enterprise(db, enterprise_id)
    return None if row is None else row.name


async def handle_times(db: Reads, key: str) -> HandleTimes | None:
    """When a handle (by key) was registered and last changed; None when it is not stored."""
    rows = await db.fetch_named("handle_times", key)
    return HandleTimes(rows[0]["created_at"], rows[0]["updated_at"]) if rows else None
