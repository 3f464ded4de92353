"""Enterprise API accounts: log in for a bearer token, log it out, and who a token or password
belongs to.

A token is accepted while its user exists, is enabled, is still at the token generation the token
was issued with (a new password, disabling or the operator's revocation move it on) and has not
logged this token out. Each worker keeps what it learnt of its users in `TokenStates`, trusted only
while the change feed is up, which tells it of every such change on every worker and instance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from resolver.cache import Trust
from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.services.authentication import UNTHROTTLED, SecretChecks, Throttle, encode_secret
from resolver.services.tokens import TokenError, TokenExpired, Tokens, token_digest
from resolver.store import accounts as db
from resolver.store import enterprises
from resolver.store.handles import HandleStore
from resolver.store.rows import AuditEntry

_MAX_REMEMBERED = 10_000
# Longer names than this are no account's (operators create at most 64 characters); they are not
# looked up, but cost the same dummy hash as an unknown name.
_MAX_USERNAME_CHARS = 256
# Tokens of one user logged out and not yet expired: past this, a logout ends every token of the
# user (its generation moves on), so that logging in and out in a loop cannot grow the list.
MAX_LOGGED_OUT_TOKENS = 64
_WRONG = ("wrong user name or password, or the account is disabled", "用户名或密码错误，或账号已停用")
_GONE = ("the account does not exist or is disabled", "账号不存在或已停用")
_VOID = (
    "the token is void (logged out, password changed or revoked); get a new one",
    "令牌已失效（已退出登录、密码已更改或已被撤销），请重新获取",
)


def _not_logged_in(message: tuple[str, str]) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message[0], zh=message[1])


def user_identity(user_id: int, enterprise_id: int, username: str) -> Identity:
    """The identity an enterprise user acts with: its enterprise, named for the audit trail."""
    return Identity(0, f"user:{user_id}", username, actor=f"user:{username}", enterprise_id=enterprise_id)


def account_identity(username: str) -> str:
    """The name the failed-authentication limits count an enterprise user name under."""
    return f"user:{username}"


def _could_exist(username: str) -> bool:
    """False for names Postgres cannot even compare (NUL, lone surrogates) or no account has."""
    if len(username) > _MAX_USERNAME_CHARS or "\x00" in username:
        return False
    try:
        username.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class TokenState:
    """What decides whether a user's tokens are accepted."""

    enterprise_id: int
    disabled: bool
    generation: int
    logged_out: frozenset[bytes]  # digests of its tokens of this generation ended by a logout

    def accepts(self, generation: int, digest: bytes) -> bool:
        """True for a token of this generation that was not logged out."""
        return generation == self.generation and digest not in self.logged_out


class TokenStates:
    """One worker's copy of its users' token states (None: no such user; ids are never reused).

    Trusted only while the change feed is up: otherwise every check reads the database. A change
    of a user (on this worker at once after its commit, elsewhere through the feed) forgets it; a
    read that began before the change, or before the feed came back (when everything is
    forgotten), is used once and not kept, so a stale state is never kept.
    """

    def __init__(self, max_entries: int = _MAX_REMEMBERED) -> None:
        self._states: dict[int, TokenState | None] = {}
        self._max_entries = max_entries
        self._epoch = 0
        self._cleared_at = 0
        self._invalidated: dict[int, int] = {}
        self._reading = 0
        self.trust = Trust()

    def __len__(self) -> int:
        return len(self._states)

    @property
    def trusted(self) -> bool:
        return bool(self.trust)

    @trusted.setter
    def trusted(self, value: bool) -> None:
        self.trust.up = value

    def get(self, user_id: int) -> tuple[bool, TokenState | None]:
        """(whether a state is kept and trusted, the state)."""
        if not self.trusted or user_id not in self._states:
            return False, None
        return True, self._states[user_id]

    def begin(self) -> int:
        """A read of a user's state begins; its result goes to `finish` with what this returns."""
        self._reading += 1
        return self._epoch

    def finish(self, user_id: int, state: TokenState | None, started: int | None) -> None:
        """Keep what a read returned (`started` None: the read failed), unless it may be stale."""
        self._reading -= 1
        if (
            started is not None
            and self.trusted
            and self._cleared_at <= started
            and self._invalidated.get(user_id, -1) <= started
        ):
            if len(self._states) >= self._max_entries:
                self._states.clear()
            self._states[user_id] = state
        if self._reading == 0:
            self._invalidated.clear()

    def invalidate(self, user_ids: list[int]) -> None:
        """These users changed: forget them; reads already running are not kept."""
        self._epoch += 1
        for user_id in user_ids:
            self._states.pop(user_id, None)
            if self._reading:
                self._invalidated[user_id] = self._epoch

    def clear(self) -> None:
        """Forget everyone (the change feed reconnected: changes may have been missed)."""
        self._epoch += 1
        self._cleared_at = self._epoch
        self._states.clear()
        self._invalidated.clear()


class Accounts:
    """Checks enterprise users' passwords and tokens."""

    def __init__(self, store: HandleStore, tokens: Tokens) -> None:
        self.store = store
        self.tokens = tokens
        self.states = TokenStates()
        self._checks = SecretChecks()

    async def _authenticate(self, username: str, password: str, throttle: Throttle) -> db.Account:
        identity = account_identity(username)
        throttle.check(identity)
        user = await db.account(self.store, username) if _could_exist(username) else None
        secret = encode_secret(password)
        if user is None or user.disabled:
            await self._checks.check(("unknown", username), secret, secrets.DUMMY_HASH, throttle, identity)
            raise _not_logged_in(_WRONG)
        key = (user.username, user.password_hash)
        if not await self._checks.check(key, secret, user.password_hash, throttle, identity):
            raise _not_logged_in(_WRONG)
        return user

    async def check_password(
        self, username: str, password: str, throttle: Throttle = UNTHROTTLED
    ) -> Identity:
        """The identity of a user name and password, or -1 (not logged in); 429 past the limits.

        Unknown and disabled users cost one hash (a dummy), like a wrong password of a known one.
        """
        user = await self._authenticate(username, password, throttle)
        return user_identity(user.id, user.enterprise_id, user.username)

    async def login(
        self, username: str, password: str, throttle: Throttle = UNTHROTTLED
    ) -> tuple[str, float]:
        """A bearer token and its expiry for a user name and password (`throttle`: the request's
        failed-authentication limits).

        The token carries the generation read with the password: should the password change
        meanwhile, the token is void from the start.
        """
        user = await self._authenticate(username, password, throttle)
        return self.tokens.issue(user.id, user.enterprise_id, user.username, user.generation, time.time())

    async def _state(self, user_id: int) -> TokenState | None:
        states = self.states
        kept, known = states.get(user_id)
        if kept:
            return known
        started = states.begin()
        state: TokenState | None = None
        try:
            row = await db.token_state(self.store, user_id)
        except BaseException:
            states.finish(user_id, None, None)
            raise
        if row is not None:
            state = TokenState(*row)
        states.finish(user_id, state, started)
        return state

    async def active(self, identity: Identity) -> bool:
        """Whether the enterprise user `identity` still exists, is enabled and is of its enterprise
        (work it started, an upload, stops when it is not)."""
        head, _, number = identity.key.partition(":")
        if head != "user" or not number.isdigit():
            return False
        state = await self._state(int(number))
        return state is not None and not state.disabled and state.enterprise_id == identity.enterprise_id

    async def from_token(self, token: str, throttle: Throttle = UNTHROTTLED) -> Identity:
        """The identity a bearer token names, while its account exists, is enabled and has not
        voided the token (-1 otherwise; 503 when the database cannot tell).

        Checking a token costs no hash: only tokens that fail their signature or expiry count
        against the address's limit.
        """
        try:
            claims = self.tokens.verify(token, time.time())
        except TokenError as exc:
            throttle.failed(None)
            raise _not_logged_in((str(exc), exc.zh)) from None
        state = await self._state(claims.user_id)
        if state is None or state.disabled or state.enterprise_id != claims.enterprise_id:
            raise _not_logged_in(_GONE)
        if not state.accepts(claims.generation, token_digest(token)):
            raise _not_logged_in(_VOID)
        return user_identity(claims.user_id, claims.enterprise_id, claims.username)

    async def logout(self, token: str, throttle: Throttle = UNTHROTTLED) -> bool:
        """End one token at once on every worker; the user's other tokens stay valid.

        True when this call ended it; False when it was void already (expired, logged out, its
        user changed or gone), which a retried logout meets. A forged token is -1.
        """
        try:
            claims = self.tokens.verify(token, time.time())
        except TokenExpired:
            return False
        except TokenError as exc:
            throttle.failed(None)
            raise _not_logged_in((str(exc), exc.zh)) from None
        user_id = claims.user_id
        async with self.store.write() as tx:
            owner = await db.lock_token_owner(tx, user_id)
            if owner is None or owner.generation != claims.generation:
                return False
            every = await db.logged_out_tokens(tx, user_id, claims.generation) >= MAX_LOGGED_OUT_TOKENS
            if every:
                await enterprises.revoke_tokens(tx, user_id, owner.enterprise_id)
            elif not await db.end_token(tx, user_id, claims.generation, token_digest(token), claims.expires):
                return False
            tx.changed_users.append(user_id)
            tx.audit(
                AuditEntry(
                    f"user:{owner.username}",
                    "user.logout",
                    None,
                    owner.enterprise_id,
                    None,
                    None,
                    {"userId": user_id, "everyToken": every},
                )
            )
        self.store.users_changed(tx.changed_users)
        return True
