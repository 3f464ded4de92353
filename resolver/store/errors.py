"""The one place where driver errors become domain errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from resolver.core.errors import RC, HandleError, Unavailable

# Errors meaning "the database is not there right now", as opposed to a bug in a statement.
# InternalClientError is asyncpg's protocol state machine finding itself mid-operation: it is what
# a connection that the server terminated under it raises (asyncpg issues 784 and 1069; seen here on
# BEGIN while Postgres shut down), and such a connection is terminated, not reused, by the pool.
UNAVAILABLE = (
    asyncpg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when an exception means the database cannot be reached."""
    return isinstance(exc, UNAVAILABLE)


# Unique constraints whose violation is a client's mistake, with what to tell the client.
_UNIQUE: dict[str, tuple[RC, str]] = {
    "handles_pkey": (RC.HANDLE_ALREADY_EXISTS, "the handle already exists"),
    "enterprises_credit_code_key": (RC.HANDLE_ALREADY_EXISTS, "该统一社会信用代码的企业已登记"),
    "enterprise_users_username_key": (RC.HANDLE_ALREADY_EXISTS, "用户名已被使用"),
    "enterprise_prefixes_pkey": (RC.HANDLE_ALREADY_EXISTS, "该前缀已分配"),
}


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn driver exceptions into domain errors, chosen by class and constraint name."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        known = _UNIQUE.get(exc.constraint_name or "")
        if known is None:
            raise
        raise HandleError(*known) from None
    except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError):
        # a NUL (or a character the database encoding lacks) that a caller's check let through:
        # the caller's mistake, said so, never a 500
        raise HandleError(
            RC.PROTOCOL_ERROR,
            "the request holds a character that cannot be stored (NUL)",
            zh="请求中含有无法保存的字符（NUL）",
        ) from None
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
        # Postgres rolled this transaction back to let another go on: nothing was written, and
        # the same request again will most likely pass (the writes lock in one order; this is
        # the safety net under it)
        raise HandleError(
            RC.SERVER_TOO_BUSY,
            "the write met a concurrent one and was rolled back; nothing was stored, retry it",
            zh="该写入与并发写入冲突而被回滚，未保存任何内容，请重试",
            retry_after=1,
        ) from None
    except UNAVAILABLE as exc:
        raise Unavailable() from exc
