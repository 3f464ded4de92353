"""Makes sure the node's own prefix handle and administrator exist."""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime
from typing import Any

from resolver.config import Config, Limits
from resolver.core import secrets
from resolver.core.handles import NodeScope
from resolver.core.values import StoredValue, parse_values
from resolver.services.registry import NODE_ADMIN_INDEX
from resolver.services.seckeys import SecretKeys
from resolver.store import accounts
from resolver.store.handles import HandleStore


class BootstrapError(RuntimeError):
    """The node cannot get an administrator (no secret was given for a new node)."""


def node_prefix_values(config: Config, seckey: dict[str, Any]) -> list[StoredValue]:
    """HS_ADMIN (full rights to 300:0.NA/<node>), an HS_VLIST group of admins, and the HS_SECKEY."""
    admin_handle = f"0.NA/{config.node_prefix}"
    raw: list[object] = [
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {
                    "handle": admin_handle,
                    "index": NODE_ADMIN_INDEX,
                    "permissions": "111111111111",
                },
            },
        },
        {
            "index": 200,
            "type": "HS_VLIST",
            "data": {
                "format": "vlist",
                "value": [{"handle": admin_handle, "index": NODE_ADMIN_INDEX}],
            },
        },
        {
            "index": NODE_ADMIN_INDEX,
            "type": "HS_SECKEY",
            "data": seckey,
            "permissions": "1100",
        },
    ]
    # The node's own record is built by the node: the limits for client input do not apply.
    return parse_values(raw, Limits(), datetime.now(UTC))


async def ensure_node_admin(config: Config, store: HandleStore, secret_keys: SecretKeys) -> None:
    """Create `0.NA/<node prefix>` when missing; when the configured secret changed, store the new one.

    Safe to run from several processes and instances at once: the row lock serialises changes, and
    when two create the handle at the same moment, the one that lost looks again.
    """
    for _ in range(3):
        if await _ensure_node_admin(config, store, secret_keys):
            return
    raise BootstrapError("the node prefix handle could not be created; see the database log")


async def _ensure_node_admin(config: Config, store: HandleStore, secret_keys: SecretKeys) -> bool:
    scope = NodeScope(config.node_prefix)
    key = scope.node_prefix_handle
    secret = config.admin_secret.encode("utf-8") if config.admin_secret else None
    async with store.write() as tx:
        existing = await tx.lock(key)
        if existing is None:
            if secret is None:
                raise BootstrapError(
                    "this node has no administrator yet: give --admin-secret (or RESOLVER_ADMIN_SECRET)"
                )
            values = node_prefix_values(config, secret_keys.stored(secret))
            # False: another process created it meanwhile; the caller looks again
            return await tx.insert(key, f"0.NA/{config.node_prefix}", "0.na", values)
        if secret is None:
            return True
        # kept when it is sealed and holds this secret; a secret stored before sealing (scrypt), or
        # another secret, is replaced by the sealed form of the configured one
        current = [v for v in existing.values if v["index"] == NODE_ADMIN_INDEX]
        hashed = secret_keys.hashed_key(current[0]["data"]) if current else None
        if hashed is not None and hmac.compare_digest(secrets.reference_hash(secret), hashed):
            return True
        fresh = node_prefix_values(config, secret_keys.stored(secret))
        kept = [v for v in existing.values if v["index"] not in {f["index"] for f in fresh}]
        await tx.update(key, sorted(kept + fresh, key=lambda v: v["index"]))
        return True


TOKEN_KEY = "enterprise-api-tokens"


async def ensure_node_key(store: HandleStore, name: str) -> bytes:
    """A random key the node generates once and every worker shares (e.g. to sign tokens)."""
    return await accounts.node_key(store, name, os.urandom(32))
