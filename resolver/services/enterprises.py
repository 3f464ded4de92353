"""The node operator's work: enterprises, their prefixes and users, credentials, the audit trail.

Every operation here is for the node administrator only (the HTTP layer checks that), runs in one
transaction, and leaves an audit entry. Errors say it in English and in Chinese (`zh`, what the
operator API answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets as random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from resolver.config import Config, Limits
from resolver.core import secrets
from resolver.core.enterprises import STATE_NAMES, PrefixState, check_transition, valid_credit_code
from resolver.core.errors import RC, HandleError
from resolver.core.handles import PREFIX_NA, NodeScope, check_prefix, fold
from resolver.core.permissions import Identity
from resolver.core.values import parse_values
from resolver.services import enterprise_keys, signed_writes
from resolver.services.record_signing import RecordSigning
from resolver.services.registry import NODE_ADMIN_INDEX, Registry
from resolver.store import enterprises as db
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry
from resolver.store.tx import Tx
from resolver.upstream.toplevel import enqueue_prefix

# The enterprise administrator on its prefix handle: everything but creating or deleting prefixes.
ENTERPRISE_ADMIN_PERMISSIONS = "111111110011"
# User names never contain ':' or '/', so they cannot be mistaken for Handle identities.
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MAX_TEXT = 200
# how long one request to turn signing on or off re-signs records before it answers `complete`
# false (well under the proxies' usual 60 s); a large prefix takes several calls
RESIGN_SECONDS = 10.0


def _bad(message: str, zh: str) -> HandleError:
    return HandleError(RC.PROTOCOL_ERROR, message, zh=zh)


def _changed(display: str, state: PrefixState) -> HandleError:
    """A prefix no longer in the state the caller acted on (a 409 for pages)."""
    exc = HandleError(
        RC.HANDLE_ALREADY_EXISTS,
        f"prefix {display} is now in state {state.value}; reload and decide again",
        zh=f"前缀 {display} 的状态已变为 {STATE_NAMES[state]}，请刷新后重新操作",
    )
    exc.status = 409
    return exc


def _missing(message: str, zh: str) -> HandleError:
    return HandleError(RC.HANDLE_NOT_FOUND, message, zh=zh)


def _no_user(enterprise_id: int, user_id: int) -> HandleError:
    return _missing(
        f"enterprise {enterprise_id} has no user {user_id}", f"企业 {enterprise_id} 没有用户 {user_id}"
    )


def _text(body: dict[str, Any], key: str, label: str, *, required: bool = True) -> str:
    value = body.get(key, "")
    if (
        not isinstance(value, str)
        or (required and not value.strip())
        or len(value) > MAX_TEXT
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise _bad(
            f"{key} must be 1 to {MAX_TEXT} characters, without control characters",
            f"{label}（{key}）必须是 1 到 {MAX_TEXT} 个字符的字符串，不含控制字符",
        )
    return value.strip()


def new_secret() -> str:
    """A random secret for a prefix administrator (shown once, stored only as a hash)."""
    return random.token_urlsafe(24)


@dataclass(frozen=True)
class PrefixChange:
    prefix: str
    state: PrefixState
    secret: str | None  # a newly generated administrator secret, to hand over once


def enterprise_prefix_handle_values(prefix_display: str, seckey: dict[str, Any]) -> list[dict[str, Any]]:
    """The values of `0.NA/<enterprise prefix>`: HS_ADMIN, an admin group, the HS_SECKEY."""
    handle = f"0.NA/{prefix_display}"
    return parse_values(
        [
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {
                        "handle": handle,
                        "index": NODE_ADMIN_INDEX,
                        "permissions": ENTERPRISE_ADMIN_PERMISSIONS,
                    },
                },
            },
            {
                "index": 200,
                "type": "HS_VLIST",
                "data": {"format": "vlist", "value": [{"handle": handle, "index": NODE_ADMIN_INDEX}]},
            },
            {
                "index": NODE_ADMIN_INDEX,
                "type": "HS_SECKEY",
                "data": seckey,
                "permissions": "1100",
            },
        ],
        Limits(),
        datetime.now(UTC),
    )


class Operators:
    """Operator actions on the node."""

    def __init__(self, config: Config, store: HandleStore, registry: Registry) -> None:
        self.config = config
        self.store = store
        self.registry = registry
        self.scope = NodeScope(config.node_prefix)

    # -- enterprises ---------------------------------------------------------------------------

    async def register_enterprise(
        self, body: dict[str, Any], actor: Identity, tx: Tx | None = None
    ) -> dict[str, Any]:
        """Admit an enterprise: name, unified social credit code (check character verified), contact.
        In `tx` when given (an application: resolver/services/applications.py), else its own."""
        name = _text(body, "name", "企业名称")
        code = _text(body, "creditCode", "统一社会信用代码").upper()
        if not valid_credit_code(code):
            raise _bad(
                f"unified social credit code {code} is not valid (18 characters, check digit per GB 32100-2015)",
                f"统一社会信用代码 {code} 不正确：应为 18 位，且校验位（第 18 位）须符合 GB 32100-2015",
            )
        contact = body.get("contact") or {}
        if not isinstance(contact, dict):
            raise _bad(
                "contact is an object {name, phone, email}", "联系人 contact 必须是对象 {name, phone, email}"
            )
        fields = [
            _text(contact, k, label, required=False)
            for k, label in (("name", "联系人"), ("phone", "电话"), ("email", "邮箱"))
        ]
        async with self._tx(tx) as tx:
            enterprise_id = await db.insert_enterprise(tx, name, code, fields)
            record = {
                "id": enterprise_id,
                "name": name,
                "creditCode": code,
                "contact": dict(zip(("name", "phone", "email"), fields, strict=True)),
            }
            tx.audit(AuditEntry(actor.name, "enterprise.create", None, enterprise_id, None, record))
        return record

    def _tx(self, tx: Tx | None) -> contextlib.AbstractAsyncContextManager[Tx]:
        """`tx` itself when given (the caller commits it), else a write transaction of its own."""
        return contextlib.nullcontext(tx) if tx is not None else self.store.write()

    async def enterprise(self, enterprise_id: int) -> dict[str, Any]:
        """An enterprise with its prefixes and users."""
        row = await db.enterprise(self.store, enterprise_id)
        if row is None:
            raise _missing(f"no enterprise {enterprise_id}", f"企业 {enterprise_id} 不存在")
        record = _enterprise_json(row)
        record["prefixes"] = [
            {
                "prefix": p.display,
                "state": p.state,
                "stateName": STATE_NAMES[PrefixState(p.state)],
                "updatedAt": p.updated_at.isoformat(),
            }
            for p in await db.prefixes_of(self.store, enterprise_id)
        ]
        record["users"] = [
            {
                "id": u.id,
                "username": u.username,
                "disabled": u.disabled,
                "createdAt": u.created_at.isoformat(),
            }
            for u in await db.users_of(self.store, enterprise_id)
        ]
        return record

    async def enterprises(self, page: int, page_size: int) -> dict[str, Any]:
        """A page of enterprises."""
        total, rows = await db.enterprise_page(self.store, page * page_size, page_size)
        return {
            "total": total,
            "page": page,
            "pageSize": page_size,
            "items": [_enterprise_json(r) for r in rows],
        }

    # -- prefixes ------------------------------------------------------------------------------

    async def allocate_prefix(
        self,
        enterprise_id: int,
        body: dict[str, Any],
        actor: Identity,
        tx: Tx | None = None,
        *,
        fresh_only: bool = False,
    ) -> dict[str, Any]:
        """Allocate a prefix below the node prefix to an enterprise; it starts awaiting review.
        `fresh_only` (an application by a stranger): refused when handles already live under it
        or its prefix handle exists, so that no one claims identifiers made before."""
        display = _text(body, "prefix", "前缀")
        folded = check_prefix(display, self.config.limits)
        if folded == self.scope.node_prefix or not self.scope.owns_prefix(folded):
            raise _bad(
                f"prefix {display} must be under the node prefix {self.config.node_prefix}, e.g. "
                f"{self.config.node_prefix}.45",
                f"前缀 {display} 必须在本节点前缀 {self.config.node_prefix} 之下，例如 {self.config.node_prefix}.45",
            )
        async with self._tx(tx) as tx:
            if await db.enterprise(tx, enterprise_id) is None:
                raise _missing(f"no enterprise {enterprise_id}", f"企业 {enterprise_id} 不存在")
            other = await db.overlapping_prefix(tx, folded)
            if other is None and fresh_only and await db.prefix_has_handles(tx, folded):
                raise HandleError(
                    RC.HANDLE_ALREADY_EXISTS,
                    f"identifiers already live under {display}: the operator allocates such a prefix",
                    zh=f"前缀 {display} 下已有标识，须由节点运营方分配",
                )
            if other is not None:
                raise HandleError(
                    RC.HANDLE_ALREADY_EXISTS,
                    f"prefix {display} overlaps prefix {other.prefix} of enterprise {other.enterprise_id}",
                    zh=f"前缀 {display} 与已分配的前缀 {other.prefix}（企业 {other.enterprise_id}）重叠",
                )
            await db.insert_prefix(tx, folded, display, enterprise_id, PrefixState.AWAITING_REVIEW.value)
            tx.audit(
                AuditEntry(
                    actor.name,
                    "prefix.allocate",
                    f"{PREFIX_NA}/{folded}",
                    enterprise_id,
                    None,
                    {"prefix": display, "state": PrefixState.AWAITING_REVIEW.value},
                )
            )
        return {
            "prefix": display,
            "enterpriseId": enterprise_id,
            "state": PrefixState.AWAITING_REVIEW.value,
            "stateName": STATE_NAMES[PrefixState.AWAITING_REVIEW],
        }

    async def _lock_prefix(self, tx: Tx, prefix: str) -> tuple[str, str, int, PrefixState]:
        row = await db.lock_prefix(tx, fold(prefix))
        if row is None:
            raise _missing(f"prefix {prefix} is not allocated", f"前缀 {prefix} 未分配")
        return row.prefix, row.display, row.enterprise_id, PrefixState(row.state)

    async def set_prefix_state(
        self,
        prefix: str,
        body: dict[str, Any],
        actor: Identity,
        expected: frozenset[PrefixState] | None = None,
    ) -> PrefixChange:
        """Move a prefix through its life cycle. Enabling it the first time creates its prefix
        handle with an administrator `300:0.NA/<prefix>`, whose secret is returned once.
        `expected`: the states the caller saw it in (a review decision), checked under the lock,
        so a decision made on a stale page cannot undo a change made meanwhile (rc 409)."""
        raw_state = body.get("state")
        try:
            wanted = PrefixState(int(raw_state))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise _bad(
                "state is 0-5 (0 disabled, 1 enabled, 2 to delete, 3 rejected, 4 awaiting review, 5 under review)",
                "state 必须是 0 到 5 之间的整数（0 停用，1 启用，2 待删除，3 驳回，4 待审核，5 审核中）",
            ) from None
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > MAX_TEXT or any(ord(c) < 32 for c in reason):
            raise _bad(
                f"reason is at most {MAX_TEXT} characters, without control characters",
                f"审核意见 reason 至多 {MAX_TEXT} 个字符，不含控制字符",
            )
        given_secret = body.get("secret")
        if given_secret is not None and (not isinstance(given_secret, str) or len(given_secret) < 12):
            raise _bad("secret must have at least 12 characters", "secret 至少 12 个字符")
        generated: str | None = None
        async with self.store.write() as tx:
            folded, display, enterprise_id, current = await self._lock_prefix(tx, prefix)
            if expected is not None and current not in expected:
                raise _changed(display, current)
            check_transition(current, wanted)
            await db.set_prefix_state(tx, folded, wanted.value)
            if reason.strip() or wanted in (PrefixState.ENABLED, PrefixState.REJECTED):
                await db.set_review_note(tx, folded, reason.strip())  # what the applicant is told
            key = f"{PREFIX_NA}/{folded}"
            if wanted == PrefixState.ENABLED and await tx.lock(key) is None:
                secret = given_secret or new_secret()
                generated = None if given_secret else secret
                seckey = self.registry.secret_keys.stored(secret.encode("utf-8"))
                values = enterprise_prefix_handle_values(display, seckey)
                await tx.insert(key, f"0.NA/{display}", PREFIX_NA, values)
                tx.audit(AuditEntry(actor.name, "handle.create", key, enterprise_id, None, values))
            if PrefixState.ENABLED in (current, wanted) and current != wanted:
                # the top-level node learns of it through the outbox, in this same transaction
                await enqueue_prefix(tx.connection, self.config, display, wanted == PrefixState.ENABLED)
            tx.audit(
                AuditEntry(
                    actor.name,
                    "prefix.state",
                    key,
                    enterprise_id,
                    {"state": current.value},
                    {"state": wanted.value, **({"reason": reason.strip()} if reason.strip() else {})},
                )
            )
        self.registry.lookup.invalidate(tx.changed)
        return PrefixChange(display, wanted, generated)

    async def set_signing(self, prefix: str, body: dict[str, Any], actor: Identity) -> dict[str, Any]:
        """Turn trusted resolution of a prefix on or off (resolver/services/record_signing.py).
        On: the certificate chain is written, then the prefix's records are signed, page by page,
        for up to RESIGN_SECONDS; `complete` false means call again with `after` (the records
        signed already are skipped anyway). Off: the node's signatures are dropped the same way."""
        signed = body.get("signed")
        if not isinstance(signed, bool):
            raise _bad("signed must be true or false", "signed 必须为 true 或 false")
        after = body.get("after", "")
        if not isinstance(after, str) or len(after) > 1024:
            raise _bad("after must be a handle key from an earlier answer", "after 应为上次应答给出的标识键")
        signing = self.registry.signing
        if signed and (signing is None or signing.current() is None):
            raise _bad(
                "the node has no signing key: run `resolver keys init`, then restart the node or send it SIGHUP",
                "节点没有签名密钥：请先运行 resolver keys init，再重启节点或发送 SIGHUP",
            )
        chains: list[tuple[str, int]] = []
        async with self.store.write() as tx:
            row, key, record = await enterprise_keys.prefix_handle(tx, prefix)
            folded, display, enterprise_id = row.prefix, row.display, row.enterprise_id
            before = await db.prefix_signed(tx, folded)
            await db.set_prefix_signed(tx, folded, signed)
            if signed and signing is not None:
                # looked at afresh, whatever this worker remembers (an operator may have removed them)
                _number, chains = await signing.chain_in(tx, [folded], force=True)
            elif not signed:
                # the node's certificates for the prefix go, so that no signature it made for the
                # prefix verifies any more (a copy replayed in a record included)
                kept = RecordSigning.without_certificates(record.values)
                if kept != record.values:
                    await tx.update(key, kept)
            tx.audit(
                AuditEntry(
                    actor.name,
                    "prefix.signing",
                    key,
                    enterprise_id,
                    {"signed": before},
                    {"signed": signed},
                )
            )
        self.registry.committed(tx.changed, chains)
        if not signed and signing is not None:
            signing.forget(folded)  # this worker's memo; the others look again within CHECK_SECONDS
        changed = refused = 0
        deadline = time.monotonic() + RESIGN_SECONDS
        last: str | None = after
        while last is not None and time.monotonic() < deadline:
            last, done, skipped = await signed_writes.resign_page(self.registry, folded, last)
            changed, refused = changed + done, refused + skipped
        return {
            "prefix": display,
            "signed": signed,
            "changed": changed,
            "refused": refused,
            "complete": last is None,
            **({} if last is None else {"after": last}),
        }

    async def rotate_credentials(
        self,
        prefix: str,
        body: dict[str, Any],
        actor: Identity,
        enterprise: int | None = None,
        states: frozenset[PrefixState] | None = None,
    ) -> str | None:
        """Replace the secret of `300:0.NA/<prefix>`; returns it when the node generated it.
        `enterprise`: the prefix must be that enterprise's (checked under the prefix's lock: the
        portal's enterprise user rotating its own prefix's secret)."""
        given = body.get("secret")
        if given is not None and (not isinstance(given, str) or len(given) < 12):
            raise _bad("secret must have at least 12 characters", "secret 至少 12 个字符")
        secret = given or new_secret()
        seckey = self.registry.secret_keys.stored(secret.encode("utf-8"))
        async with self.store.write() as tx:
            folded, display, enterprise_id, state = await self._lock_prefix(tx, prefix)
            if enterprise is not None and enterprise_id != enterprise:
                raise _missing(f"prefix {prefix} is not allocated", f"前缀 {prefix} 未分配")
            if states is not None and state not in states:
                raise _changed(display, state)
            key = f"{PREFIX_NA}/{folded}"
            record = await tx.lock(key)
            if record is None:
                raise _missing(
                    f"prefix {display} was never enabled and has no admin credentials",
                    f"前缀 {display} 尚未启用过，没有管理员凭据",
                )
            fresh = enterprise_prefix_handle_values(display, seckey)
            replaced = [v for v in fresh if v["index"] == NODE_ADMIN_INDEX]
            kept = [v for v in record.values if v["index"] != NODE_ADMIN_INDEX]
            await tx.update(key, sorted(kept + replaced, key=lambda v: v["index"]))
            tx.audit(
                AuditEntry(
                    actor.name,
                    "prefix.credentials.rotate",
                    key,
                    enterprise_id,
                    None,
                    None,
                    {"identity": f"{NODE_ADMIN_INDEX}:0.NA/{display}"},
                )
            )
        self.registry.lookup.invalidate(tx.changed)
        return None if given else secret

    # -- users ---------------------------------------------------------------------------------

    async def create_user(
        self, enterprise_id: int, body: dict[str, Any], actor: Identity, tx: Tx | None = None
    ) -> dict[str, Any]:
        """An enterprise API account (the password is stored as a salted scrypt hash)."""
        username = _text(body, "username", "用户名")
        if not _USERNAME.fullmatch(username):
            raise _bad(
                "a user name is 1-64 of A-Z a-z 0-9 . _ @ -",
                "用户名只能由字母、数字和 . _ @ - 组成，1 到 64 个字符",
            )
        password = body.get("password")
        if not isinstance(password, str) or len(password) < 8:
            raise _bad("password must have at least 8 characters", "密码 password 至少 8 个字符")
        hashed = await asyncio.to_thread(secrets.hash_secret, password.encode("utf-8"))
        async with self._tx(tx) as tx:
            if await db.enterprise(tx, enterprise_id) is None:
                raise _missing(f"no enterprise {enterprise_id}", f"企业 {enterprise_id} 不存在")
            user_id = await db.insert_user(tx, enterprise_id, username, hashed)
            tx.audit(AuditEntry(actor.name, "user.create", None, enterprise_id, None, {"username": username}))
        return {"id": user_id, "enterpriseId": enterprise_id, "username": username}

    async def update_user(
        self, enterprise_id: int, user_id: int, body: dict[str, Any], actor: Identity
    ) -> None:
        """Change an account's password, or disable and enable it. A new password and disabling
        void every token of the user, on every worker, once this returns."""
        password = body.get("password")
        disabled = body.get("disabled")
        if password is not None and (not isinstance(password, str) or len(password) < 8):
            raise _bad("password must have at least 8 characters", "密码 password 至少 8 个字符")
        if disabled is not None and not isinstance(disabled, bool):
            raise _bad("disabled must be true or false", "disabled 必须是 true 或 false")
        hashed = (
            None
            if password is None
            else await asyncio.to_thread(secrets.hash_secret, password.encode("utf-8"))
        )
        revokes = password is not None or disabled is True
        async with self.store.write() as tx:
            if not await db.update_user(tx, user_id, enterprise_id, hashed, disabled, revoke_tokens=revokes):
                raise _no_user(enterprise_id, user_id)
            tx.changed_users.append(user_id)
            detail = {
                "userId": user_id,
                "passwordChanged": password is not None,
                "disabled": disabled,
                "tokensRevoked": revokes,
            }
            tx.audit(AuditEntry(actor.name, "user.update", None, enterprise_id, None, None, detail))
        self.store.users_changed(tx.changed_users)

    async def revoke_tokens(self, enterprise_id: int, user_id: int, actor: Identity) -> None:
        """Void every token of an account (it logs in again with its password)."""
        async with self.store.write() as tx:
            username = await db.revoke_tokens(tx, user_id, enterprise_id)
            if username is None:
                raise _no_user(enterprise_id, user_id)
            tx.changed_users.append(user_id)
            detail = {"userId": user_id, "username": username}
            tx.audit(AuditEntry(actor.name, "user.tokens.revoke", None, enterprise_id, None, None, detail))
        self.store.users_changed(tx.changed_users)

    async def delete_user(self, enterprise_id: int, user_id: int, actor: Identity) -> None:
        """Delete an account; its tokens die with it. Its audit entries stay (they name it)."""
        async with self.store.write() as tx:
            username = await db.delete_user(tx, user_id, enterprise_id)
            if username is None:
                raise _no_user(enterprise_id, user_id)
            tx.changed_users.append(user_id)
            before = {"userId": user_id, "username": username}
            tx.audit(AuditEntry(actor.name, "user.delete", None, enterprise_id, before, None))
        self.store.users_changed(tx.changed_users)

    # -- audit ---------------------------------------------------------------------------------

    async def audit_trail(
        self,
        handle: str | None,
        enterprise_id: int | None,
        since: datetime | None,
        until: datetime | None,
        page: int,
        page_size: int,
    ) -> dict[str, Any]:
        """Audit entries, newest first, filtered by handle, enterprise and time."""
        key = None if handle is None else fold(handle)
        total, rows = await db.audit_page(
            self.store, key, enterprise_id, since, until, page * page_size, page_size
        )
        items = [
            {
                "id": r.id,
                "at": r.at.isoformat(),
                "actor": r.actor,
                "enterpriseId": r.enterprise_id,
                "operation": r.operation,
                "handle": r.handle,
                "before": None if r.before is None else orjson.loads(r.before),
                "after": None if r.after is None else orjson.loads(r.after),
                "detail": None if r.detail is None else orjson.loads(r.detail),
                "requestId": r.request_id,
                "client": r.client,
            }
            for r in rows
        ]
        return {"total": total, "page": page, "pageSize": page_size, "items": items}


def _enterprise_json(row: db.EnterpriseRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "creditCode": row.credit_code,
        "contact": {"name": row.contact_name, "phone": row.contact_phone, "email": row.contact_email},
        "createdAt": row.created_at.isoformat(),
    }
