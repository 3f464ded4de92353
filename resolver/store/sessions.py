"""The authenticated sessions of the Handle API (`handle_sessions`, schema/0011), by a digest of
the session id (resolver/services/handle_sessions.py keeps the rest)."""

from __future__ import annotations

from resolver.store.handles import HandleStore


async def remember(store: HandleStore, digest: bytes, handle: str, index: int, expires: float) -> None:
    """The session is authenticated as `index:handle` until `expires` (Unix time); expired rows go."""
    async with store.write() as tx:
        await tx.execute_named("handle_session_remember", digest, handle, index, expires)
        await tx.execute_named("handle_sessions_sweep")


async def identity(store: HandleStore, digest: bytes) -> tuple[str, int] | None:
    """The handle and index the session was authenticated as, None when it was not or expired."""
    rows = await store.fetch_named("handle_session_get", digest)
    return (str(rows[0]["identity"]), int(rows[0]["value_index"])) if rows else None


async def forget(store: HandleStore, digest: bytes) -> None:
    """The session ends (`DELETE /api/sessions/this`)."""
    async with store.write() as tx:
        await tx.execute_named("handle_session_forget", digest)


async def forget_identity(store: HandleStore, handle: str) -> None:
    """Every session authenticated as `handle` ends."""
    async with store.write() as tx:
        await tx.execute_named("handle_sessions_forget_identity", handle)
