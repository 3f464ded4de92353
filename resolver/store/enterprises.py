"""Enterprises, their prefixes and users, and the audit trail: the operator's data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from resolver.store.statements import Reads, Writes


class EnterpriseRow(NamedTuple):
    id: int
    name: str
    credit_code: str
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    created_at: datetime


class PrefixRow(NamedTuple):
    """An allocated prefix of an enterprise."""

    prefix: str
    display: str
    state: int
    updated_at: datetime
    review_note: str = ""


class ReviewItem(NamedTuple):
    """A prefix in the operator's review queue, with its enterprise."""

    prefix: str
    display: str
    state: int
    updated_at: datetime
    enterprise_id: int
    name: str
    credit_code: str
    contact_name: str | None
    contact_phone: str | None


class LockedPrefix(NamedTuple):
    prefix: str
    display: str
    enterprise_id: int
    state: int


class Overlap(NamedTuple):
    """An allocated prefix that a new one would overlap (equal, above or below it)."""

    prefix: str
    enterprise_id: int


class UserRow(NamedTuple):
    """An enterprise API account, as the operator sees it (no secrets)."""

    id: int
    username: str
    disabled: bool
    created_at: datetime


class AuditRow(NamedTuple):
    """One audit entry; `before`, `after` and `detail` as stored JSON text; the request's id and
    client address (None outside a request)."""

    id: int
    at: datetime
    actor: str
    enterprise_id: int | None
    operation: str
    handle: str | None
    before: str | None
    after: str | None
    detail: str | None
    request_id: str | None  # X-Request-Id of the request that wrote it (schema 0009)
    client: str | None  # its client's address


async def insert_enterprise(tx: Writes, name: str, credit_code: str, contact: Sequence[str | None]) -> int:
    """A new enterprise's id (HandleError when the credit code is registered already)."""
    row = await tx.fetchrow_named("enterprise_insert", name, credit_code, *contact)
    assert row is not None
    return int(row["id"])


async def enterprise(db: Reads | Writes, enterprise_id: int) -> EnterpriseRow | None:
    rows = await db.fetch_named("enterprise_get", enterprise_id)
    return EnterpriseRow(*rows[0]) if rows else None


async def enterprise_page(db: Reads, offset: int, limit: int) -> tuple[int, list[EnterpriseRow]]:
    """The number of enterprises, and `limit` of them from `offset` in id order."""
    total = await db.fetchval_named("enterprise_count")
    rows = await db.fetch_named("enterprise_list", offset, limit)
    return int(total), [EnterpriseRow(*r) for r in rows]


async def prefixes_of(db: Reads, enterprise_id: int) -> list[PrefixRow]:
    """The prefixes allocated to an enterprise, in prefix order."""
    return [PrefixRow(*r) for r in await db.fetch_named("enterprise_prefixes", enterprise_id)]


async def prefixes_in_review(db: Reads, limit: int) -> list[ReviewItem]:
    """The review queue, oldest first."""
    return [ReviewItem(*r) for r in await db.fetch_named("prefixes_in_review", limit)]


async def prefix_state(db: Reads, prefix: str) -> int | None:
    """The state of an allocated prefix (folded), None when it is not allocated."""
    value = await db.fetchval_named("prefix_state_of", prefix)
    return None if value is None else int(value)


async def set_review_note(tx: Writes, prefix: str, note: str) -> None:
    await tx.execute_named("prefix_set_review_note", prefix, note)


async def users_of(db: Reads, enterprise_id: int) -> list[UserRow]:
    return [UserRow(*r) for r in await db.fetch_named("users_of", enterprise_id)]


async def overlapping_prefix(tx: Writes, prefix: str) -> Overlap | None:
    """An allocated prefix equal to, above or below `prefix` (folded), if any; allocations are
    serialized first, so that two concurrent ones cannot both pass."""
    await tx.execute_named("prefix_allocation_lock")
    rows = await tx.fetch_named("prefix_overlapping", prefix)
    return Overlap(*rows[0]) if rows else None


async def prefix_has_handles(tx: Writes, prefix: str) -> bool:
    """Handles live under exactly `prefix` (folded) already, or its prefix handle exists."""
    row = await tx.fetchrow_named("prefix_has_handles", prefix)
    return bool(row is not None and row[0])


async def insert_prefix(tx: Writes, prefix: str, display: str, enterprise_id: int, state: int) -> None:
    await tx.execute_named("prefix_insert", prefix, display, enterprise_id, state)


async def lock_prefix(tx: Writes, prefix: str) -> LockedPrefix | None:
    """An allocated prefix (folded), locked until the transaction ends."""
    row = await tx.fetchrow_named("prefix_lock", prefix)
    return None if row is None else LockedPrefix(*row)


async def set_prefix_state(tx: Writes, prefix: str, state: int) -> None:
    await tx.execute_named("prefix_set_state", prefix, state)


async def prefix_signed(tx: Writes, prefix: str) -> bool:
    """Whether the prefix's records are signed (False when it is not allocated)."""
    row = await tx.fetchrow_named("prefix_signed", prefix)
    return bool(row["signed"]) if row is not None else False


async def set_prefix_signed(tx: Writes, prefix: str, signed: bool) -> None:
    await tx.execute_named("prefix_set_signed", prefix, signed)


async def insert_user(tx: Writes, enterprise_id: int, username: str, password_hash: str) -> int:
    """A new account's id (HandleError when the username is taken)."""
    row = await tx.fetchrow_named("user_insert", enterprise_id, username, password_hash)
    assert row is not None
    return int(row["id"])


async def update_user(
    tx: Writes,
    user_id: int,
    enterprise_id: int,
    password_hash: str | None,
    disabled: bool | None,
    *,
    revoke_tokens: bool,
) -> bool:
    """Change an account of this enterprise (None: keep); False when it has no such account."""
    row = await tx.fetchrow_named(
        "user_update", user_id, password_hash, disabled, enterprise_id, 1 if revoke_tokens else 0
    )
    return row is not None


async def revoke_tokens(tx: Writes, user_id: int, enterprise_id: int) -> str | None:
    """Void every token of an account of this enterprise; its username, None when it has none."""
    row = await tx.fetchrow_named("user_revoke_tokens", user_id, enterprise_id)
    return None if row is None else str(row["username"])


async def delete_user(tx: Writes, user_id: int, enterprise_id: int) -> str | None:
    """Delete an account of this enterprise; its username, None when it has none."""
    row = await tx.fetchrow_named("user_delete", user_id, enterprise_id)
    return None if row is None else str(row["username"])


async def audit_page(
    db: Reads,
    handle_key: str | None,
    enterprise_id: int | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> tuple[int, list[AuditRow]]:
    """The number of matching audit entries, and `limit` of them from `offset`, newest first."""
    total = await db.fetchval_named("audit_count", handle_key, enterprise_id, since, until)
    rows = await db.fetch_named("audit_query", handle_key, enterprise_id, since, until, offset, limit)
    return int(total), [AuditRow(*r) for r in rows]


async def prefix_owner(db: Reads, prefix: str) -> int | None:
    """The enterprise an allocated prefix (folded) belongs to; None when it is not allocated."""
    rows = await db.fetch_named("prefix_info_read", [prefix])
    return int(rows[0]["enterprise_id"]) if rows else None
