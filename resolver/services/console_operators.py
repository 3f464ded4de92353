"""Console accounts with roles (issue 18): reviewers work the review queue, operators also run
enterprises, prefixes, the node page and the audit search; the node administrator does all of it
and alone manages these accounts. Passwords are hashed and checked as enterprise users' are
(core/secrets scrypt, services/authentication.SecretChecks with the request's failed-login
limits); an unknown or disabled name costs the same hash as a wrong password."""

from __future__ import annotations

import asyncio
import re

from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.services.authentication import SecretChecks, Throttle, encode_secret
from resolver.services.handle_sessions import CONSOLE_ACCOUNT, HandleSessions
from resolver.store import console as db
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry

ROLES = ("reviewer", "operator")
ADMIN = "admin"  # the node administrator's role in the console
# what each role may do; the node administrator may do everything
MAY = {"reviewer": {"review"}, "operator": {"review", "operate"}}
PREFIX = CONSOLE_ACCOUNT  # how a console account is named (sessions, the audit trail)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}")


def may(role: str, what: str) -> bool:
    return role == ADMIN or what in MAY.get(role, set())


def identity_of(username: str) -> Identity:
    """The identity a console account acts as (the audit trail names it console:<name>)."""
    return Identity(0, f"{PREFIX}{username}".lower(), f"{PREFIX}{username}", actor=f"{PREFIX}{username}")


def _bad(message: str, zh: str) -> HandleError:
    return HandleError(RC.INVALID_VALUE, message, zh=zh)


def _wrong() -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, "wrong user name or password", zh="用户名或密码错误")


class ConsoleOperators:
    def __init__(self, store: HandleStore, sessions: HandleSessions | None = None) -> None:
        self.store = store
        self.sessions = sessions  # whose sessions end when an account is changed
        self._checks = SecretChecks()

    async def check(self, username: str, password: str, throttle: Throttle) -> tuple[Identity, str]:
        """(identity, role) of a console account's name and password; rc 402 otherwise."""
        name = f"{PREFIX}{username}"
        throttle.check(name)
        found = await db.operator(self.store, username) if _NAME.fullmatch(username) else None
        secret = encode_secret(password)
        if found is None or found.disabled:
            await self._checks.check(("unknown", username), secret, secrets.DUMMY_HASH, throttle, name)
            raise _wrong()
        if not await self._checks.check(
            (found.username, found.password_hash), secret, found.password_hash, throttle, name
        ):
            raise _wrong()
        return identity_of(found.username), found.role

    async def role_of(self, identity: Identity) -> str | None:
        """The role of a console account now (None: unknown or disabled): a change takes effect
        on the account's next request."""
        if not identity.text.startswith(PREFIX):
            return None
        found = await db.operator(self.store, identity.text[len(PREFIX) :])
        return None if found is None or found.disabled else found.role

    async def create(self, username: str, password: str, role: str, actor: Identity) -> None:
        if not _NAME.fullmatch(username):
            raise _bad(
                "a user name is 3 to 64 letters, digits, '.', '_' or '-'",
                "用户名为 3 至 64 个字母、数字、“.”、“_”或“-”",
            )
        if role not in ROLES:
            raise _bad("the role is reviewer or operator", "角色须为 reviewer（审核员）或 operator（运营员）")
        if len(password) < 10 or len(password) > 1024:
            raise _bad("a password has 10 to 1024 characters", "密码须为 10 至 1024 个字符")
        hashed = await asyncio.to_thread(secrets.hash_secret, password.encode("utf-8"))
        async with self.store.write() as tx:
            if await db.insert_operator(tx, username, hashed, role) is None:
                raise HandleError(
                    RC.HANDLE_ALREADY_EXISTS, f"{username} exists", zh=f"用户名 {username} 已存在"
                )
            tx.audit(
                AuditEntry(
                    actor.name,
                    "console.operator.create",
                    None,
                    None,
                    None,
                    {"username": username, "role": role},
                )
            )

    async def change(self, username: str, role: str, disabled: bool, actor: Identity) -> None:
        if role not in ROLES:
            raise _bad("the role is reviewer or operator", "角色须为 reviewer（审核员）或 operator（运营员）")
        found = await db.operator(self.store, username)
        async with self.store.write() as tx:
            if found is None or not await db.set_operator(tx, username, role, disabled):
                raise HandleError(RC.HANDLE_NOT_FOUND, f"no account {username}", zh=f"没有账号 {username}")
            tx.audit(
                AuditEntry(
                    actor.name,
                    "console.operator.change",
                    None,
                    None,
                    None,
                    {"username": username, "role": role, "disabled": disabled},
                )
            )
        if self.sessions is not None:  # signed in before: signed out, whatever changed
            await self.sessions.end_all_of(f"{PREFIX}{found.username}")

    async def list(self) -> list[db.OperatorRow]:
        return await db.operators(self.store)
