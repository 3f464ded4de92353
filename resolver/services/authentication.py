"""Authentication of `index:handle` identities against HS_SECKEY values.

Verifying a secret is slow by design (scrypt), so it runs in a thread; successful verifications
are remembered, keyed by the stored hash, so that rotating a key forgets them. Every attempt is
admitted by a `Throttle` (the failed-authentication limits) before a hash is computed, and an
identity that does not exist costs the same hash as a wrong secret, so that neither the answer
nor its time tells which identities exist.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
from typing import Protocol
from urllib.parse import unquote

from resolver.cache import Lookup
from resolver.config import Limits
from resolver.core import secrets
from resolver.core.errors import RC, HandleError, quoted
from resolver.core.handles import fold, parse_handle
from resolver.core.permissions import Identity
from resolver.core.values import StoredValue
from resolver.native import protocol, signing
from resolver.services.seckeys import SecretKeys
from resolver.store.handles import HandleStore

_LOG = logging.getLogger(__name__)

_MAX_REMEMBERED = 10_000
# The longest index accepted in a user name (2^31 - 1 has ten digits); int() of a longer string of
# digits is work for nothing, and past 4300 digits an error.
_MAX_INDEX_DIGITS = 10


class Attempt(Protocol):
    """An attempt a throttle admitted before a hash was computed; it counts as a failure unless
    it succeeds."""

    def succeeded(self) -> None:
        """The identity was proven: the attempt does not count, and the address is remembered."""


class Throttle(Protocol):
    """The failed-authentication limits of one client address (`None`: no identity was named)."""

    def check(self, identity: str | None) -> None:
        """429 when an attempt to prove `identity` from here would be refused now."""

    def admit(self, identity: str | None) -> Attempt:
        """Check, and count an attempt before its hash is computed."""

    def failed(self, identity: str | None) -> None:
        """Check, and count a failure that cost no hash (malformed credentials, a forged token)."""

    def remember(self, identity: str) -> None:
        """`identity` was proven from here without an attempt (a remembered secret)."""


class _Unthrottled:
    def check(self, identity: str | None) -> None:
        pass

    def admit(self, identity: str | None) -> Attempt:
        return self

    def failed(self, identity: str | None) -> None:
        pass

    def remember(self, identity: str) -> None:
        pass

    def succeeded(self) -> None:
        pass


UNTHROTTLED: Throttle = _Unthrottled()


def handle_identity(key: str) -> str:
    """The name the failed-authentication limits count a Handle identity under (any index)."""
    return f"handle:{key}"


def _failed(message: str, zh: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message, zh=zh)


def encode_secret(text: str) -> bytes:
    """The bytes of a secret as sent (a lone surrogate cannot match anything, but must not raise)."""
    return text.encode("utf-8", "surrogatepass")


class SecretChecks:
    """Secrets checked against stored hashes: in a thread, once for concurrent equal checks, and
    remembered when they matched (keyed by the stored hash, so that rotating a key forgets them).

    Only a computation is an attempt the throttle admits: a remembered match, or joining the
    computation already running for the same secret and hash, costs no hash and tells nothing new.
    """

    def __init__(self) -> None:
        self._matched: dict[object, bytes] = {}
        self._running: dict[tuple[object, bytes], asyncio.Future[bool]] = {}

    async def check(self, key: object, secret: bytes, stored: str, throttle: Throttle, identity: str) -> bool:
        """True when `secret` matches `stored` (`key`: names the stored value, with its hash)."""
        fingerprint = hashlib.sha256(secret).digest()
        if self._matched.get(key) == fingerprint:
            throttle.remember(identity)
            return True
        running = self._running.get((key, fingerprint))
        joined = running is not None
        if running is None:
            attempt = throttle.admit(identity)
            running = asyncio.ensure_future(asyncio.to_thread(secrets.verify_secret, secret, stored))
            self._running[(key, fingerprint)] = running
            running.add_done_callback(functools.partial(self._done, key, fingerprint, attempt))
        matched = await asyncio.shield(running)
        if matched and joined:
            throttle.remember(identity)
        return matched

    def _done(self, key: object, fingerprint: bytes, attempt: Attempt, running: asyncio.Future[bool]) -> None:
        # here rather than after the await: a client that hung up does not undo its success
        del self._running[(key, fingerprint)]
        if running.cancelled() or running.exception() is not None or not running.result():
            return
        if len(self._matched) >= _MAX_REMEMBERED:
            self._matched.clear()
        self._matched[key] = fingerprint
        attempt.succeeded()


def parse_basic(header: str) -> tuple[str, str]:
    """`Basic base64(user:password)` -> (percent-decoded user, password)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise _failed(
            "only Basic authentication with index:handle is supported",
            "仅支持以 index:handle 为用户名的 Basic 认证",
        )
    try:
        # ValueError: a header that is not ASCII (binascii.Error is one too)
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise _failed(
            "the Basic credentials are not valid base64 of UTF-8", "Basic 凭据不是 UTF-8 文本的有效 base64"
        ) from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise _failed("the Basic credentials have no password", "Basic 凭据中没有密码")
    try:
        return unquote(user, errors="strict"), password
    except UnicodeDecodeError:
        raise _failed(
            "the Basic user name is not valid percent-encoded UTF-8", "Basic 用户名不是有效的百分号编码 UTF-8"
        ) from None


def parse_identity(user: str, limits: Limits) -> tuple[int, str]:
    """`300:0.NA/88.123` -> (300, "0.NA/88.123"); without an index, index 0 means any."""
    head, colon, rest = user.partition(":")
    if colon and head.isascii() and head.isdigit():
        if len(head) > _MAX_INDEX_DIGITS or int(head) > limits.max_index:
            raise _failed(
                f"the index of the user name {quoted(user, 80)} is out of range",
                f"用户名 {quoted(user, 80)} 中的索引超出范围",
            )
        index, handle = int(head), rest
    else:
        index, handle = 0, user
    try:
        parse_handle(handle, limits)
    except HandleError:
        raise _failed(
            f"the user name {quoted(user, 80)} is not index:handle",
            f"用户名 {quoted(user, 80)} 不是 index:handle 形式",
        ) from None
    return index, handle


class Authenticator:
    """Proves `index:handle` identities: Basic credentials checked against the secret keys stored
    in handles, and challenge answers (HS_SECKEY and HS_PUBKEY, the native protocol's and the
    HTTP `Authorization: Handle` scheme's) checked against the keys of the identity handle."""

    def __init__(
        self, lookup: Lookup, limits: Limits, secret_keys: SecretKeys, store: HandleStore | None = None
    ) -> None:
        self._lookup = lookup
        self._limits = limits
        self._keys = secret_keys
        self._store = store  # where a secret stored before sealing is converted (None: never)
        self._checks = SecretChecks()

    async def _values(self, key: str) -> list[StoredValue]:
        # never a stale entry: it may hold a key rotated since (503 while the database is away)
        entry = await self._lookup.get(key, stale=False)
        return sorted(entry.record.values, key=lambda v: v["index"]) if entry.record is not None else []

    async def authenticate(self, header: str, throttle: Throttle = UNTHROTTLED) -> Identity:
        """The identity the Basic header proves, or rc 402 (HTTP 401); 429 past the throttle's limits.

        A sealed secret key is checked at once (`secrets.password_matches`); one stored before
        sealing costs a scrypt hash, and is sealed once it matched. An identity handle that does not
        exist, or has no secret key at that index, costs what a sealed key costs, and gets the same
        answer as a wrong secret.
        """
        try:
            user, password = parse_basic(header)
            index, handle = parse_identity(user, self._limits)
        except HandleError:
            throttle.failed(None)
            raise
        key = fold(handle)
        identity = handle_identity(key)
        throttle.check(identity)  # before the lookup: past a limit, nothing is done at all
        candidates = [v for v in await self._values(key) if _is_secret_key(v, index)]
        secret = encode_secret(password)
        sealed = [(v, h) for v in candidates if (h := self._keys.hashed_key(v["data"])) is not None]
        hashed = [v for v in candidates if _is_scrypt(v)]
        if sealed or not hashed:
            attempt = throttle.admit(identity)
            matched = None
            for value, hashed_key in sealed:
                if secrets.password_matches(secret, hashed_key) and matched is None:
                    matched = value
            if not sealed:
                secrets.password_matches(secret, _NO_KEY)  # the same work as one key
            if matched is not None:
                attempt.succeeded()
                return Identity(matched["index"], key, handle)
        for value in hashed:
            stored = value["data"]["value"]
            if await self._checks.check((key, value["index"], stored), secret, stored, throttle, identity):
                await self._convert(key, value["index"], stored, secret, f"{value['index']}:{handle}")
                return Identity(value["index"], key, handle)
        # one answer whether the handle exists or not
        raise _failed(
            "authentication failed: unknown identity or wrong secret", "认证失败：身份不存在或密钥错误"
        )

    async def _convert(self, key: str, index: int, stored: str, secret: bytes, actor: str) -> None:
        """Seal a secret key stored before sealing, now that its secret was presented. A failure
        leaves the scrypt hash in place (checked again next time): the login succeeded anyway."""
        if self._store is None:
            return
        try:
            if await self._keys.convert(self._store, key, index, stored, secret, actor):
                self._lookup.invalidate([key])
        except Exception:  # the database away: the next login tries again
            _LOG.warning("the secret key %s:%s could not be sealed yet", index, key, exc_info=True)

    async def verify_answer(
        self,
        auth_type: str,
        handle: str,
        index: int,
        nonce: bytes,
        digest: bytes,
        signed_response: bytes,
        throttle: Throttle = UNTHROTTLED,
    ) -> Identity:
        """The identity a challenge answer proves (`HandleServer.verifyIdentityAndGetIndex`), or
        rc 403 (AUTHENTICATION_FAILED); 429 past the throttle's limits.

        `signed_response` is in the native form (`ChallengeAnswerRequest`): for HS_SECKEY the code
        octet and the MAC (`signing.check_seckey_answer`), for HS_PUBKEY the hash name and the
        signature (`signing.check_pubkey_answer`); what was signed is `nonce || digest`. Index 0
        tries every key of that type in index order, as the reference does. A secret key is
        checked in the reference's hashed form: clients answer with the hash option
        (`SecretKeyAuthenticationInfo(handle, index, secret, true)`).
        """
        try:
            parse_handle(handle, self._limits)
        except HandleError:
            # a NUL or a megabyte of name: refused before it is a lookup key or a throttle key
            throttle.failed(None)
            raise HandleError(
                RC.AUTHENTICATION_FAILED,
                f"the identity {quoted(handle, 80)} is not a handle",
                zh=f"身份 {quoted(handle, 80)} 不是有效的标识",
            ) from None
        key = fold(handle)
        identity = handle_identity(key)
        throttle.check(identity)
        if auth_type not in ("HS_SECKEY", "HS_PUBKEY"):
            throttle.failed(identity)
            raise HandleError(
                RC.AUTHENTICATION_FAILED,
                f"unknown authentication type {quoted(auth_type, 40)}: HS_SECKEY or HS_PUBKEY",
                zh=f"未知的认证类型 {quoted(auth_type, 40)}：应为 HS_SECKEY 或 HS_PUBKEY",
            )
        if auth_type == "HS_SECKEY" and not _affordable(signed_response):
            throttle.failed(identity)
            raise HandleError(
                RC.AUTHENTICATION_FAILED,
                f"a PBKDF2 answer may use at most {MAX_PBKDF2_ITERATIONS} iterations of a 160-bit key "
                "(iterations times the key length's 160-bit blocks)",
                zh=f"PBKDF2 应答的迭代次数乘以密钥长度所含 160 位块数不得超过 {MAX_PBKDF2_ITERATIONS}",
            )
        candidates = [
            v
            for v in await self._values(key)
            if fold(v["type"]) == fold(auth_type) and index in (0, v["index"])
        ]
        attempt = throttle.admit(identity)
        # index 0 tries the keys in index order, as the reference does, but only the first few: a
        # tenant can store any number of keys in its own handle, and each PBKDF2 check is work
        for value in candidates[:MAX_KEYS_TRIED]:
            if await self._answers(auth_type, value, nonce, digest, signed_response):
                attempt.succeeded()
                return Identity(value["index"], key, handle)
        raise HandleError(
            RC.AUTHENTICATION_FAILED,
            "authentication failed: unknown identity, wrong key, or a secret key stored before "
            "challenge-response was offered (sign in once with Basic over HTTP to convert it)",
            zh="认证失败：身份不存在、密钥错误，或该密钥保存于支持挑战应答之前（请先用 Basic 认证登录一次以完成转换）",
        )

    async def _answers(
        self, auth_type: str, value: StoredValue, nonce: bytes, digest: bytes, answer: bytes
    ) -> bool:
        if fold(value["type"]) != fold(auth_type):
            return False
        try:
            if auth_type == "HS_SECKEY":
                hashed_key = self._keys.hashed_key(value["data"])
                if hashed_key is None:
                    return False
                # PBKDF2 costs milliseconds: off the event loop
                return await asyncio.to_thread(signing.check_seckey_answer, hashed_key, nonce, digest, answer)
            public = signing.decode_public_key(protocol.value_data(value["data"]))
            return signing.check_pubkey_answer(public, nonce, digest, answer)
        except (signing.SignatureError, protocol.EncodingError, ValueError):
            return False


# The reference's clients use 10,000 (`Util.doPbkdf2HmacSHA1` callers); the client chooses, and each
# iteration is the node's CPU.
MAX_PBKDF2_ITERATIONS = 100_000
# The keys of one identity handle an answer naming index 0 is checked against.
MAX_KEYS_TRIED = 16
_NO_KEY = secrets.reference_hash(b"")


def pbkdf2_work(answer: bytes) -> int:
    """The SHA-1 block computations a PBKDF2 answer asks of the node, in iterations of one
    160-bit block: PBKDF2 runs all its iterations once for each block of the key length, so 10,000
    iterations of a 4096-bit key cost what 260,000 of a 160-bit key do (0 when not PBKDF2)."""
    if not answer or answer[0] != signing.CODE_PBKDF2_HMAC_SHA1:
        return 0
    try:
        params = signing.parse_pbkdf2(answer[1:])[0]
    except signing.SignatureError:
        return 0  # refused by the check itself
    return params.iterations * -(-params.key_bits // 160)


def _affordable(answer: bytes) -> bool:
    return pbkdf2_work(answer) <= MAX_PBKDF2_ITERATIONS


def _is_secret_key(value: StoredValue, index: int) -> bool:
    return fold(value["type"]) == "hs_seckey" and (index == 0 or value["index"] == index)


def _is_scrypt(value: StoredValue) -> bool:
    data = value["data"]
    return data.get("format") == secrets.HASH_FORMAT and isinstance(data.get("value"), str)
