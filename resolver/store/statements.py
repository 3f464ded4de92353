"""What the aggregate modules of the store run their named statements on: the handle store outside
a transaction (reads), or a write transaction (`Tx`)."""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg


class Reads(Protocol):
    """Named read-only statements outside a transaction (`HandleStore`), or inside one (`Tx`)."""

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]: ...

    async def fetchval_named(self, name: str, *args: object) -> Any: ...


class Writes(Protocol):
    """Named statements inside a write transaction (`Tx`)."""

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]: ...

    async def fetchrow_named(self, name: str, *args: object) -> asyncpg.Record | None: ...

    async def execute_named(self, name: str, *args: object) -> str: ...
