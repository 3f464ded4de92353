"""Enterprise users' credentials and token states, and the node's own keys."""

from __future__ import annotations

from typing import NamedTuple

from resolver.store.handles import HandleStore
from resolver.store.statements import Reads, Writes


class Account(NamedTuple):
    """An enterprise user as a login needs it."""

    id: int
    enterprise_id: int
    username: str
    password_hash: str
    disabled: bool
    generation: int  # the token generation: tokens of an earlier one are void


class TokenStateRow(NamedTuple):
    """What decides whether a user's tokens are accepted, as stored."""

    enterprise_id: int
    disabled: bool
    generation: int
    logged_out: frozenset[bytes]  # digests of tokens of this generation ended by a logout


class TokenOwner(NamedTuple):
    enterprise_id: int
    username: str
    generation: int


async def account(db: Reads, username: str) -> Account | None:
    rows = await db.fetch_named("user_by_name", username)
    if not rows:
        return None
    r = rows[0]
    return Account(
        int(r["id"]),
        int(r["enterprise_id"]),
        str(r["username"]),
        str(r["password_hash"]),
        bool(r["disabled"]),
        int(r["token_generation"]),
    )


async def token_state(db: Reads, user_id: int) -> TokenStateRow | None:
    """A user's token state; None when there is no such user."""
    rows = await db.fetch_named("user_token_state", user_id)
    if not rows:
        return None
    r = rows[0]
    return TokenStateRow(
        int(r["enterprise_id"]),
        bool(r["disabled"]),
        int(r["token_generation"]),
        frozenset(bytes(d) for d in r["revoked"]),
    )


async def lock_token_owner(tx: Writes, user_id: int) -> TokenOwner | None:
    """The user whose token is being ended, locked until the transaction ends."""
    row = await tx.fetchrow_named("token_owner_lock", user_id)
    if row is None:
        return None
    return TokenOwner(int(row["enterprise_id"]), str(row["username"]), int(row["token_generation"]))


async def logged_out_tokens(tx: Writes, user_id: int, generation: int) -> int:
    """Forget the user's ended tokens that are void anyway (expired, or of an earlier generation);
    the number still remembered."""
    await tx.execute_named("token_revocations_prune", user_id, generation)
    row = await tx.fetchrow_named("token_revocations_count", user_id)
    assert row is not None
    return int(row[0])


async def end_token(tx: Writes, user_id: int, generation: int, digest: bytes, expires: float) -> bool:
    """Remember one ended token until it expires; False when it had been ended already."""
    done = await tx.execute_named("token_revoke", user_id, generation, digest, expires)
    return not done.endswith(" 0")


async def node_key(store: HandleStore, name: str, fresh: bytes) -> bytes:
    """The node's secret called `name`, set to `fresh` the first time it is asked for (by whichever
    worker of whichever instance asks first)."""
    await store.fetchval_named("node_key_ensure", name, fresh)
    return bytes(await store.fetchval_named("node_key_get", name))
