"""What the portal reads and writes beside the APIs' tables: uploads and their progress
(schema/0016, statements in sql/uploads.sql), and the identifiers of a label range (sql/labels.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from resolver.store.queries import escape_like
from resolver.store.statements import Reads, Writes

# a running upload not heard from for this long was interrupted (its worker stopped)
STALE_SECONDS = 120.0


@dataclass(frozen=True)
class Upload:
    id: int
    file_name: str
    format: str
    state: str
    total_rows: int
    rows_done: int
    accepted: int
    rejected: int
    message: str
    has_report: bool
    created_at: datetime
    updated_at: datetime
    interrupted: bool

    @property
    def percent(self) -> int:
        if self.state != "running":
            return 100
        return min(99, 100 * self.rows_done // max(self.total_rows, 1))


async def start(
    tx: Writes, enterprise_id: int, username: str, file_name: str, fmt: str, total_rows: int
) -> int | None:
    """A new upload's id, or None while another of the enterprise's is running (the enterprise's
    starts are serialized, so two at once cannot both find none running)."""
    await tx.fetchrow_named("upload_lock", enterprise_id)
    if await tx.fetchrow_named("upload_running_of", enterprise_id, STALE_SECONDS):
        return None
    row = await tx.fetchrow_named("upload_insert", enterprise_id, username, file_name, fmt, total_rows)
    assert row is not None
    return int(row[0])


async def touch(tx: Writes, upload_id: int) -> None:
    await tx.execute_named("upload_touch", upload_id)


async def progress(tx: Writes, upload_id: int, done: int, accepted: int, rejected: int) -> None:
    await tx.execute_named("upload_progress", upload_id, done, accepted, rejected)


async def finish(
    tx: Writes,
    upload_id: int,
    state: str,
    counts: tuple[int, int, int],
    message: str,
    report: bytes | None,
) -> None:
    await tx.execute_named("upload_finish", upload_id, state, *counts, message, report)


async def upload_of(db: Reads, upload_id: int, enterprise_id: int) -> Upload | None:
    rows = await db.fetch_named("upload_of", upload_id, enterprise_id, STALE_SECONDS)
    return Upload(*rows[0]) if rows else None


async def uploads_of(db: Reads, enterprise_id: int, limit: int = 20) -> list[Upload]:
    return [Upload(*r) for r in await db.fetch_named("uploads_of", enterprise_id, limit, STALE_SECONDS)]


async def report_of(db: Reads, upload_id: int, enterprise_id: int) -> tuple[bytes, str] | None:
    rows = await db.fetch_named("upload_report", upload_id, enterprise_id)
    if not rows or rows[0][0] is None:
        return None
    return bytes(rows[0][0]), str(rows[0][1])


async def labels_range(
    db: Reads, prefix: str, low: str, high: str, batch: str, limit: int
) -> list[tuple[str, str]]:
    """(handle, values as JSON text) of the identifiers directly under `prefix` whose keys are
    from `low` to `high`, in key order; only production batch `batch` unless it is ''."""
    return [(r[0], r[1]) for r in await db.fetch_named("labels_range", prefix, low, high, batch, limit)]


async def find(
    db: Reads,
    prefix: str,
    starting: str,
    days: tuple[date | None, date | None],
    value: tuple[str, str],
    offset: int,
    limit: int,
) -> list[str]:
    """Handles directly under `prefix` (folded) whose key starts with `starting` (folded, or ''),
    created within `days` (UTC, both ends included, None: open) and holding a value of the type
    `value[0]` (folded, or '') equal to `value[1]`; in key order."""
    pattern = escape_like(starting) + "%" if starting else ""
    rows = await db.fetch_named("portal_find", prefix, pattern, *days, *value, offset, limit)
    return [r[0] for r in rows]
