"""The pending challenges of native administration (`native_challenges`, schema/0012): the
request a challenge was sent for, until its answer takes it (resolver/native/admin.py)."""

from __future__ import annotations

from resolver.store.handles import HandleStore


class TooManyPending(Exception):
    """As many challenges wait for answers as the caps allow."""


async def put(
    store: HandleStore,
    session_id: int,
    address: str,
    network: str,
    nonce: bytes,
    request: bytes,
    expires: float,
    caps: tuple[int, int],
) -> bool:
    """Keep the request challenged under `session_id` until `expires` (Unix time); False when
    that session id is taken already. TooManyPending when `network` has `caps[0]` challenges
    waiting, or everyone together `caps[1]` (concurrent puts may pass a cap by the few in
    flight). Expired rows go."""
    async with store.write() as tx:
        await tx.execute_named("native_challenges_sweep")
        row = await tx.fetchrow_named("native_challenges_pending", network)
        if row is not None and (row["here"] >= caps[0] or row["everywhere"] >= caps[1]):
            raise TooManyPending()
        status = await tx.execute_named(
            "native_challenge_put", session_id, address, network, nonce, request, expires
        )
    return status.endswith(" 1")


async def take(store: HandleStore, session_id: int, address: str) -> tuple[bytes, bytes] | None:
    """(nonce, request) of the challenge sent to `address` under `session_id`, removed so that an
    answer serves once; None when there is none or it expired."""
    async with store.write() as tx:
        row = await tx.fetchrow_named("native_challenge_take", session_id, address)
    return (bytes(row["nonce"]), bytes(row["request"])) if row is not None else None
