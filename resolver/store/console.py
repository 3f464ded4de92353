"""The console's accounts (schema/0017) and its enterprise search; statements in sql/console.sql."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from resolver.store.enterprises import EnterpriseRow
from resolver.store.queries import escape_like
from resolver.store.statements import Reads, Writes


class OperatorRow(NamedTuple):
    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool
    created_at: datetime


async def insert_operator(tx: Writes, username: str, password_hash: str, role: str) -> int | None:
    """The new account's id, None when the user name is taken."""
    row = await tx.fetchrow_named("console_operator_insert", username, password_hash, role)
    return None if row is None else int(row[0])


async def operator(db: Reads, username: str) -> OperatorRow | None:
    rows = await db.fetch_named("console_operator_of", username)
    return OperatorRow(*rows[0]) if rows else None


async def operators(db: Reads) -> list[OperatorRow]:
    return [OperatorRow(*r) for r in await db.fetch_named("console_operator_list")]


async def set_operator(tx: Writes, username: str, role: str, disabled: bool) -> bool:
    return await tx.fetchrow_named("console_operator_set", username, role, disabled) is not None


def _like(text: str) -> str:
    return "%" + escape_like(text) + "%"


async def search_enterprises(db: Reads, text: str, limit: int) -> list[EnterpriseRow]:
    """Enterprises whose name or one of whose prefixes holds `text`, or whose credit code it is."""
    rows = await db.fetch_named("enterprise_search", _like(text), text.upper(), limit)
    return [EnterpriseRow(*r) for r in rows]
