"""Guessing secrets, and what a guess may cost or reveal.

- Failed authentications are limited per (identity, client address), per address and, looser, per
  identity, on every route that authenticates; past a limit the answer is 429 with Retry-After in
  the API's error shape, and no hash is computed for it. An address where the identity authenticated
  before is exempt from the identity's own limit, so failures from elsewhere do not lock it out.
- The scrypt parameters are the node's: pre-hashed secrets with others are refused (rc 202), and
  values stored with others are never computed with them (one hash with the node's, no match).
- An unknown identity costs exactly the hashes a known one costs, and gets the same answer.
- Malformed credentials of every kind are 4xx, never 500.

Checks are counted (hashlib.scrypt and secrets.password_matches are wrapped), never timed: a
password or a secret key stored before sealing costs a scrypt hash, a sealed secret key (and an
identity without any key) one comparison. Several client addresses are real:
every address of 127.0.0.0/8 is the loopback, and the client binds its connections to one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from yarl import URL

from resolver.config import RateLimits
from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.http.keys import ACCOUNTS
from resolver.http.ratelimit import FailedAuthentications, TooManyFailures
from tests.enterprise_helpers import admit, bearer
from tests.helpers import ADMIN_SECRET, ADMIN_USER, basic, serving, url_value

NODE_PARAMETERS = (1 << 14, 8, 1)
PAIR_BURST, ADDRESS_BURST, IDENTITY_BURST = 3, 6, 10
# Refills so slow that none happens during a test: every count below is exact.
TIGHT = {
    "failed_auth_per_identity_address": 0.001,
    "failed_auth_per_identity_address_burst": PAIR_BURST,
    "failed_auth_per_address": 0.001,
    "failed_auth_per_address_burst": ADDRESS_BURST,
    "failed_auth_per_identity": 0.001,
    "failed_auth_per_identity_burst": IDENTITY_BURST,
}
PREFIX = "88.123.45"
USER, PASSWORD = "acme", "password-123"
WRONG = "wrong-secret"


SEALED = "sealed"


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every secret checked: the (n, r, p) of each scrypt computation, in any thread, and SEALED
    for each comparison with a sealed secret key."""
    calls: list[object] = []
    real = hashlib.scrypt
    matches = secrets.password_matches

    def comparing(password: bytes, hashed: bytes) -> bool:
        calls.append(SEALED)
        return matches(password, hashed)

    monkeypatch.setattr(secrets, "password_matches", comparing)

    def counting(password: bytes, *, salt: bytes, n: int, r: int, p: int, maxmem: int = 0, dklen: int = 64):
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(secrets.hashlib, "scrypt", counting)
    return calls


def costs(calls: list[object]) -> int:
    """How many secrets were checked, each with the node's own parameters."""
    assert all(call in (NODE_PARAMETERS, SEALED) for call in calls), calls
    return len(calls)


@pytest.fixture
async def node(config):
    """The node with tight failure limits, an enterprise with prefix 88.123.45 and user acme."""
    async with serving(replace(config, rate=replace(config.rate, **TIGHT))) as client:
        enterprise_id, _ = await admit(client, PREFIX, 1)
        created = await client.post(
            f"/admin/enterprises/{enterprise_id}/users",
            json={"username": USER, "password": PASSWORD},
            headers=basic(),
        )
        client.enterprise_id = enterprise_id
        client.user_id = (await created.json())["data"]["id"]
        yield client


@contextlib.asynccontextmanager
async def at(client: Any, address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session to the node whose connections come from `address` (of 127.0.0.0/8)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    base = URL.build(scheme="http", host=client.host, port=client.port)
    async with aiohttp.ClientSession(base_url=base, connector=connector) as session:
        yield session


Request = tuple[str, str, dict[str, Any]]


async def send(session: aiohttp.ClientSession, request: Request) -> tuple[int, dict[str, Any], Any]:
    method, path, kwargs = request
    async with session.request(method, path, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


def handle_basic(method: str, path: str, **extra: Any) -> Callable[[str, str], Request]:
    return lambda user, secret: (method, path, {"headers": basic(user, secret), **extra})


def token_request(user: str, password: str) -> Request:
    return "POST", "/identity/token", {"json": {"username": user, "password": password}}


DETAIL = f"/identityv2/data/detail?handle={PREFIX}/x"
# route: (error shape, whose credentials, the request for a user and secret)
ROUTES: dict[str, tuple[str, str, Callable[[str, str], Request]]] = {
    "handle-resolve": ("handle", ADMIN_USER, handle_basic("GET", "/api/handles/0.NA/88.123")),
    "handle-put": (
        "handle",
        ADMIN_USER,
        handle_basic("PUT", "/api/handles/88.123/bf", json=[url_value(1, "https://example.com/bf")]),
    ),
    "handle-list": ("handle", ADMIN_USER, handle_basic("GET", "/api/handles?prefix=88.123")),
    "handle-stats": ("handle", ADMIN_USER, handle_basic("GET", "/api/stats")),
    "hrls-search": ("handle", ADMIN_USER, handle_basic("GET", "/hrls/handles?URL=https://example.com/*")),
    "enterprise-basic-identity": ("envelope", ADMIN_USER, handle_basic("GET", DETAIL)),
    "enterprise-basic-user": ("envelope", USER, handle_basic("GET", DETAIL)),
    "enterprise-token": ("envelope", USER, token_request),
    "operator-admin": ("envelope", ADMIN_USER, handle_basic("GET", "/admin/enterprises")),
}


def correct_secret(user: str) -> str:
    return ADMIN_SECRET if user == ADMIN_USER else PASSWORD


def assert_limited(shape: str, status: int, headers: dict[str, Any], body: Any) -> None:
    """429 with Retry-After, in the error shape of the API."""
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1
    if shape == "handle":
        assert body["responseCode"] == 3 and "too many failed authentications" in body["message"]
    else:
        assert body["status"] == -2 and "认证失败次数过多" in body["message"] and body["data"] is None


@pytest.mark.parametrize("route", ROUTES)
async def test_past_the_limit_wrong_secrets_get_429_and_cost_no_hash(node, checks, route):
    shape, user, request = ROUTES[route]
    checks.clear()
    async with at(node, "127.0.0.2") as attacker:
        answers = [await send(attacker, request(user, WRONG)) for _ in range(PAIR_BURST + 3)]
        assert [status for status, _, _ in answers] == [401] * PAIR_BURST + [429] * 3
        assert costs(checks) == PAIR_BURST
        for answer in answers[PAIR_BURST:]:
            assert_limited(shape, *answer)
        # over the limit, even the right secret is not checked (that would be a free guess)
        assert_limited(shape, *await send(attacker, request(user, correct_secret(user))))
    assert len(checks) == PAIR_BURST
    # the owner, at another address, is not held by the flood
    async with at(node, "127.0.0.3") as owner:
        status, _, body = await send(owner, request(user, correct_secret(user)))
    assert status not in (401, 429, 500), body


async def test_forged_tokens_are_limited_per_address_and_valid_ones_still_work(node, checks):
    async with at(node, "127.0.0.4") as attacker:
        answers = [
            await send(attacker, ("GET", DETAIL, {"headers": bearer("e30.forged")}))
            for _ in range(ADDRESS_BURST + 2)
        ]
        assert [status for status, _, _ in answers] == [401] * ADDRESS_BURST + [429] * 2
        for answer in answers[ADDRESS_BURST:]:
            assert_limited("envelope", *answer)
        # a token costs no hash to check, so a valid one is answered even from this address
        status, _, body = await send(attacker, token_request(USER, PASSWORD))
        assert status == 429  # ... but a password is a hash: held
    async with at(node, "127.0.0.5") as owner:
        status, _, body = await send(owner, token_request(USER, PASSWORD))
        assert status == 200 and body["status"] == 1
        token = body["data"]["token"]
    async with at(node, "127.0.0.4") as same_address:
        status, _, body = await send(same_address, ("GET", DETAIL, {"headers": bearer(token)}))
        assert status == 200 and body["status"] == -2  # no such identifier: past authentication
    assert len(checks) == 1


async def test_spraying_identities_from_one_address_is_held_by_the_address_limit(node, checks):
    checks.clear()
    async with at(node, "127.0.0.6") as attacker:
        statuses = []
        for i in range(ADDRESS_BURST + 2):
            user = f"300:0.NA/88.123.{i}" if i % 2 else f"user{i}"
            request = handle_basic("GET", DETAIL)(user, WRONG)
            statuses.append((await send(attacker, request))[0])
    assert statuses == [401] * ADDRESS_BURST + [429] * 2
    assert len(checks) == ADDRESS_BURST
    # another address, another identity: untouched
    async with at(node, "127.0.0.7") as other:
        status, _, body = await send(other, token_request(USER, PASSWORD))
    assert status == 200 and body["status"] == 1


async def test_failures_from_many_addresses_cannot_lock_the_owner_out(node, checks):
    """The lockout attack: many addresses spend the identity's limit. Past it, an address that has
    failed against the identity waits; one that has not (the owner, usually) still gets its attempt;
    the owner's usual address (where it authenticated) is not held by the identity's limit at all."""
    request = handle_basic("GET", "/api/handles?prefix=88.123.45")
    owner_address = "127.0.0.8"
    async with at(node, owner_address) as owner:
        assert (await send(owner, request(ADMIN_USER, ADMIN_SECRET)))[0] == 200
    checks.clear()
    seen = []
    for i in range(6):
        async with at(node, f"127.0.0.{10 + i}") as attacker:
            seen.append(
                [(await send(attacker, request(ADMIN_USER, f"g{i}-{j}")))[0] for j in range(PAIR_BURST)]
            )
    assert IDENTITY_BURST == 3 * PAIR_BURST + 1
    assert seen == [[401] * PAIR_BURST] * 3 + [[401, 429, 429]] * 3  # the 4th spends the last token
    assert len(checks) == 3 * PAIR_BURST + 3
    async with at(node, "127.0.0.99") as newcomer:  # has not failed against it: its attempt is made
        assert (await send(newcomer, request(ADMIN_USER, ADMIN_SECRET)))[0] == 200
    async with at(node, "127.0.0.98") as careless:  # has: held, whatever it sends next
        assert (await send(careless, request(ADMIN_USER, WRONG)))[0] == 401
        assert_limited("handle", *await send(careless, request(ADMIN_USER, ADMIN_SECRET)))
    async with at(node, owner_address) as owner:
        assert (await send(owner, request(ADMIN_USER, ADMIN_SECRET)))[0] == 200
        # the owner's own mistakes count against its own (identity, address) limit only
        statuses = [(await send(owner, request(ADMIN_USER, f"typo-{j}")))[0] for j in range(PAIR_BURST + 1)]
    assert statuses == [401] * PAIR_BURST + [429]


async def test_successes_never_count(node, checks):
    requests = [handle_basic("GET", "/api/handles?prefix=88.123")(ADMIN_USER, ADMIN_SECRET)]
    requests.append(token_request(USER, PASSWORD))
    requests.append(handle_basic("GET", DETAIL)(USER, PASSWORD))
    async with at(node, "127.0.0.9") as client:
        for request in requests:
            statuses = {(await send(client, request))[0] for _ in range(3 * ADDRESS_BURST)}
            assert statuses == {200}
        # concurrently too: an attempt holds its token only while it is being verified
        answers = await asyncio.gather(*(send(client, requests[1]) for _ in range(2 * ADDRESS_BURST)))
    assert {status for status, _, _ in answers} == {200}


async def test_concurrent_guesses_are_held_at_the_limit_and_equal_ones_share_a_hash(
    node, checks, monkeypatch
):
    """Guesses at a sealed secret key, then at a password (a scrypt hash, which equal guesses in
    flight share)."""
    request = handle_basic("GET", "/api/handles?prefix=88.123")
    checks.clear()
    async with at(node, "127.0.0.20") as attacker:
        answers = await asyncio.gather(
            *(send(attacker, request(ADMIN_USER, f"guess-{i}")) for i in range(12))
        )
    assert Counter(status for status, _, _ in answers) == {401: PAIR_BURST, 429: 12 - PAIR_BURST}
    assert len(checks) == PAIR_BURST
    counting = secrets.hashlib.scrypt

    def slow(*args: Any, **kwargs: Any) -> bytes:
        time.sleep(1.0)  # in the hashing thread: a window in which all twelve surely arrive
        return counting(*args, **kwargs)

    monkeypatch.setattr(secrets.hashlib, "scrypt", slow)
    checks.clear()
    async with at(node, "127.0.0.21") as attacker:
        answers = await asyncio.gather(*(send(attacker, token_request(USER, WRONG)) for _ in range(12)))
    # the same guess at once: one computation, whose answer tells all of them nothing new
    assert {status for status, _, _ in answers} == {401} and len(checks) == 1


def test_ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4():
    limiter = FailedAuthentications(RateLimits(**TIGHT), workers=1)
    for i in range(ADDRESS_BURST):
        limiter.at(f"2001:db8:1:2::{i + 1:x}").failed(None)  # one subscriber varying its address
    with pytest.raises(TooManyFailures):
        limiter.at("2001:db8:1:2:ffff::9").check(None)
    limiter.at("2001:db8:1:3::1").check(None)  # the next /64 is someone else
    for _ in range(ADDRESS_BURST):
        limiter.at("::ffff:192.0.2.7").failed(None)
    with pytest.raises(TooManyFailures):
        limiter.at("192.0.2.7").check(None)


def test_each_worker_enforces_its_share():
    """The rate is divided by the workers (the kernel spreads connections evenly); bursts are per worker."""
    limits = RateLimits(**{**TIGHT, "failed_auth_per_address": 4.0})
    single, shared = FailedAuthentications(limits, workers=1), FailedAuthentications(limits, workers=4)
    assert single.address is not None and shared.address is not None
    assert (single.address.rate, shared.address.rate) == (4.0, 1.0)
    assert shared.address.burst == ADDRESS_BURST


# -- an unknown identity costs what a known one costs -------------------------------------------

FOREIGN_PARAMETERS = {
    "524288-2-4": "524288$2$4",  # 5.7 s of CPU per request before the fix
    "3-1-1": "3$1$1",  # invalid: hashlib raised, 500
    "16384-0-1": "16384$0$1",
    "1048576-16-4": "1048576$16$4",
    "16384-8-2": "16384$8$2",
}


def foreign_hash(parameters: str) -> str:
    salt, digest = base64.b64encode(b"s" * 16).decode(), base64.b64encode(b"d" * 32).decode()
    return f"{parameters}${salt}${digest}"


def seckey(index: int, data: dict[str, str]) -> dict[str, object]:
    return {"index": index, "type": "HS_SECKEY", "data": data}


async def legacy_handle(dsn: str, handle: str, stored: str) -> None:
    """A handle whose HS_SECKEY was stored with foreign parameters, as before the fix (straight into
    the table: the node would refuse it now)."""
    values = [seckey(300, {"format": "scrypt", "value": stored})]
    for value in values:
        value.update(ttl=86400, timestamp="2026-01-01T00:00:00Z", permissions="1100")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "insert into handles (key, handle, prefix, vals) values ($1, $1, $2, $3::json)",
            handle.lower(),
            handle.partition("/")[0].lower(),
            orjson.dumps(values).decode(),
        )
    finally:
        await conn.close()


BASIC_IDENTITIES = {
    "known, wrong secret": "300:0.NA/88.123",
    "handle does not exist": "300:0.NA/88.999",
    "no HS_SECKEY at that index": "301:0.NA/88.123",
    "handle without any HS_SECKEY": "1:88.123/plain",
    "secret stored with 524288$2$4": "300:88.123/legacy-slow",
    "secret stored with 3$1$1": "300:88.123/legacy-invalid",
}


async def test_every_basic_identity_costs_one_hash_and_gets_one_answer(node, config, checks):
    resp = await node.put("/api/handles/88.123/plain", json=[url_value(1, "https://e.x")], headers=basic())
    assert resp.status in (200, 201)
    await legacy_handle(config.dsn, "88.123/legacy-slow", foreign_hash("524288$2$4"))
    await legacy_handle(config.dsn, "88.123/legacy-invalid", foreign_hash("3$1$1"))
    messages = set()
    for i, (case, user) in enumerate(BASIC_IDENTITIES.items()):
        for path in ("/api/handles/0.NA/88.123", DETAIL):
            checks.clear()
            async with at(node, f"127.0.1.{i}") as client:
                status, _, body = await send(client, handle_basic("GET", path)(user, WRONG))
            assert status == 401, (case, body)
            assert costs(checks) == 1, case
            messages.add(body["message"])
    assert len(messages) == 2  # one for each API, whatever the case
    # the legacy handles resolve as before
    for handle in ("88.123/legacy-slow", "88.123/legacy-invalid"):
        assert (await node.get(f"/api/handles/{handle}")).status == 200


async def test_every_login_costs_one_hash_and_gets_one_answer(node, config, checks):
    disabled = await node.post(
        f"/admin/enterprises/{node.enterprise_id}/users",
        json={"username": "gone", "password": PASSWORD},
        headers=basic(),
    )
    gone_id = (await disabled.json())["data"]["id"]
    resp = await node.put(
        f"/admin/enterprises/{node.enterprise_id}/users/{gone_id}", json={"disabled": True}, headers=basic()
    )
    assert (await resp.json())["status"] == 1
    await node.post(
        f"/admin/enterprises/{node.enterprise_id}/users",
        json={"username": "legacy", "password": PASSWORD},
        headers=basic(),
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        await conn.execute(
            "update enterprise_users set password_hash = $1 where username = 'legacy'",
            foreign_hash("524288$2$4"),
        )
    finally:
        await conn.close()
    cases = {
        "known, wrong password": (USER, WRONG),
        "unknown user": ("nobody", WRONG),
        "disabled user, right password": ("gone", PASSWORD),
        "stored with 524288$2$4, right password": ("legacy", PASSWORD),
        "a 100,000-character user name": ("a" * 100_000, PASSWORD),
    }
    messages = set()
    for i, (case, (user, password)) in enumerate(cases.items()):
        checks.clear()
        async with at(node, f"127.0.2.{i}") as client:
            status, _, body = await send(client, token_request(user, password))
        assert status == 401 and body["status"] == -1, (case, body)
        assert costs(checks) == 1, case
        messages.add(body["message"])
    assert len(messages) == 1


# -- the hash parameters are the node's ---------------------------------------------------------


@pytest.mark.parametrize("parameters", FOREIGN_PARAMETERS.values(), ids=FOREIGN_PARAMETERS.keys())
async def test_prehashed_secrets_with_foreign_parameters_are_refused(node, checks, parameters):
    values = [seckey(300, {"format": "scrypt", "value": foreign_hash(parameters)})]
    resp = await node.put("/api/handles/88.123/tenant", json=values, headers=basic())
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 202, body
    assert "16384" in body["message"] and "value 300" in body["message"]
    assert (await node.get("/api/handles/88.123/tenant")).status == 404


async def test_prehashed_secrets_with_the_nodes_parameters_are_kept_then_sealed_at_the_first_login(node):
    """A record stored before sealing, read and written back, keeps its scrypt hash; the first
    Basic login that presents the secret seals it (the only moment the node holds the secret)."""
    stored = secrets.hash_secret(b"tenant-secret")
    values = [seckey(300, {"format": "scrypt", "value": stored})]
    resp = await node.put("/api/handles/88.123/tenant", json=values, headers=basic())
    assert resp.status in (200, 201), await resp.json()
    resp = await node.get("/api/handles/88.123/tenant", headers=basic())
    assert (await resp.json())["values"][0]["data"] == {"format": "scrypt", "value": stored}
    resp = await node.get("/api/handles/88.123/tenant", headers=basic("300:88.123/tenant", WRONG))
    assert resp.status == 401
    resp = await node.get("/api/handles/88.123/tenant", headers=basic("300:88.123/tenant", "tenant-secret"))
    assert resp.status == 200
    resp = await node.get("/api/handles/88.123/tenant", headers=basic())
    data = (await resp.json())["values"][0]["data"]
    assert data["format"] == "sealed" and "tenant-secret" not in data["value"], data
    resp = await node.get("/api/handles/88.123/tenant", headers=basic("300:88.123/tenant", "tenant-secret"))
    assert resp.status == 200
    resp = await node.get("/api/handles/88.123/tenant", headers=basic("300:88.123/tenant", WRONG))
    assert resp.status == 401


@pytest.mark.parametrize(
    "data",
    [{"format": "hex", "value": "zz"}, {"format": "base64", "value": "!!"}, {"format": "scrypt", "value": 5}],
    ids=["hex", "base64", "scrypt-not-a-string"],
)
async def test_undecodable_secrets_are_invalid_values(node, data):
    resp = await node.put("/api/handles/88.123/tenant", json=[seckey(300, data)], headers=basic())
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 202, body


# -- malformed credentials are 4xx, never 500 ----------------------------------------------------


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


HANDLE_PATH = "/api/handles/0.NA/88.123"
# case: (method, path, Authorization header or None, body, the statuses allowed; None: any 4xx).
# The enterprise API answers a malformed request with HTTP 200 and status -2 (business failures
# are HTTP 200 there, as on deployed nodes); a NUL anywhere in a JSON body is refused that way
# before the credentials are even read, and without that refusal the account check says 401.
MALFORMED: dict[str, tuple[str, str, bytes | None, bytes, set[int] | None]] = {
    "token: NUL in the user name": (
        "POST",
        "/identity/token",
        None,
        orjson.dumps({"username": "a\x00b", "password": PASSWORD}),
        {401, 200},
    ),
    "token: NUL in the password": (
        "POST",
        "/identity/token",
        None,
        orjson.dumps({"username": USER, "password": "a\x00b"}),
        {401, 200},
    ),
    "token: a lone surrogate": (
        "POST",
        "/identity/token",
        None,
        b'{"username":"\\ud800","password":"x"}',
        {200},
    ),
    "token: a password of 1 MB": (
        "POST",
        "/identity/token",
        None,
        orjson.dumps({"username": USER, "password": "p" * 1_000_000}),
        {401},
    ),
    "token: a user name that is a number": (
        "POST",
        "/identity/token",
        None,
        orjson.dumps({"username": 5, "password": "x"}),
        {200},
    ),
    "basic: a Unicode digit as index": (
        "GET",
        HANDLE_PATH,
        b"Basic " + b64("³%3A0.NA%2F88.123:x".encode()),
        b"",
        {401},
    ),
    "basic: a Unicode digit as index, enterprise": (
        "GET",
        DETAIL,
        b"Basic " + b64("³%3A0.NA%2F88.123:x".encode()),
        b"",
        {401},
    ),
    "basic: an index of 5000 digits": (
        "GET",
        HANDLE_PATH,
        b"Basic " + b64(b"9" * 5000 + b"%3A0.NA%2F88.123:x"),
        b"",
        {401},
    ),
    "basic: an invalid percent-escape": (
        "GET",
        HANDLE_PATH,
        b"Basic " + b64(b"%FF%3A0.NA%2F88.123:x"),
        b"",
        {401},
    ),
    "basic: an invalid percent-escape, enterprise": ("GET", DETAIL, b"Basic " + b64(b"%FF:x"), b"", {401}),
    "basic: not base64": ("GET", HANDLE_PATH, b"Basic !!!!", b"", {401}),
    "basic: not ASCII": ("GET", HANDLE_PATH, "Basic éé".encode(), b"", {401}),
    "basic: not ASCII, enterprise": ("GET", DETAIL, "Basic éé".encode(), b"", {401}),
    "basic: not UTF-8 inside": ("GET", DETAIL, b"Basic " + b64(b"\xff\xfe:x"), b"", {401}),
    "basic: not UTF-8 on the wire": ("GET", HANDLE_PATH, b"Basic \xff\xfe", b"", {401}),
    "basic: NUL in the password": (
        "GET",
        HANDLE_PATH,
        b"Basic " + b64(b"300%3A0.NA%2F88.123:a\x00b"),
        b"",
        {401},
    ),
    "basic: NUL in a user name": ("GET", DETAIL, b"Basic " + b64(b"ac\x00me:x"), b"", {401}),
    "basic: no password": ("GET", DETAIL, b"Basic " + b64(b"acme"), b"", {401}),
    "basic: nothing": ("GET", HANDLE_PATH, b"Basic", b"", {401}),
    "bearer: not ASCII": ("GET", DETAIL, "Bearer abc.éé".encode(), b"", {401}),
    "bearer: not ASCII, Handle API": ("GET", HANDLE_PATH, "Bearer abc.éé".encode(), b"", {401}),
    "bearer: not UTF-8": ("GET", DETAIL, b"Bearer abc.\xff\xfe", b"", {401}),
    "bearer: a bare non-ASCII token": ("GET", DETAIL, "abc.éé".encode(), b"", {401}),
    "bearer: payload not base64": ("GET", DETAIL, b"Bearer !!!.abc", b"", {401}),
    "bearer: empty": ("GET", DETAIL, b"Bearer ", b"", {401}),
    "another scheme": ("GET", DETAIL, b"Digest username=x", b"", {401}),
    "a 100 kB header": ("GET", HANDLE_PATH, b"Basic " + b"A" * 100_000, b"", None),
    "a token of 1 MB": ("GET", DETAIL, b"Bearer " + b"A" * 1_000_000, b"", None),
}


async def raw_request(client: Any, method: str, path: str, authorization: bytes | None, body: bytes):
    """Send exactly these bytes; (status, the JSON body or None)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = f"{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n".encode()
    if authorization is not None:
        head += b"Authorization: " + authorization + b"\r\n"
    if body:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    writer.write(head + b"\r\n" + body)

    async def drain() -> None:
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    sending = asyncio.create_task(drain())
    answer = b""
    try:
        # piece by piece: a node that refuses a huge header answers, then resets the connection
        # while the rest is still arriving; what came before the reset is the answer
        while chunk := await reader.read(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    finally:
        await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1])
    payload = rest.partition(b"\r\n\r\n")[2]
    try:
        return status, orjson.loads(payload)
    except orjson.JSONDecodeError:
        return status, None


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_credentials_are_refused_never_500(node, case):
    method, path, authorization, body, allowed = MALFORMED[case]
    status, answer = await raw_request(node, method, path, authorization, body)
    if allowed is None:  # refused by aiohttp's parser before the node sees it
        assert 400 <= status < 500, (status, answer)
        return
    assert status in allowed, (status, answer)
    if path.startswith("/api/"):
        assert answer["responseCode"] == {401: 402, 400: 4}[status], answer
    else:
        assert answer["status"] == {401: -1, 200: -2}[status], answer


async def test_a_user_name_postgres_cannot_compare_is_an_unknown_user(node, checks):
    """Wherever a user name comes from (Basic, or a body that lets NUL through)."""
    for username in ("ac\x00me", "\ud800", "a" * 100_000):
        checks.clear()
        with pytest.raises(HandleError) as refused:
            await node.server.app[ACCOUNTS].check_password(username, PASSWORD)
        assert refused.value.rc == RC.AUTHENTICATION_NEEDED
        assert costs(checks) == 1


# -- the real process ---------------------------------------------------------------------------


def _get(address: str, port: int, user: str, guesses: list[str], statuses: Counter[int]) -> None:
    """A request for each guessed secret, over one keep-alive connection from `address`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(address, 0))
    try:
        for guess in guesses:
            connection.request("GET", "/api/handles?prefix=88.123", headers=basic(user, guess))
            response = connection.getresponse()
            response.read()
            statuses[response.status] += 1
    finally:
        connection.close()


@pytest.mark.e2e
def test_a_real_node_holds_a_flood_of_wrong_secrets(tmp_path, fresh_database):
    from tests.nodes import start_node

    node = start_node(
        tmp_path,
        "--workers",
        "1",
        "--dsn",
        fresh_database,
        "--rate-failed-auth-per-identity-address",
        "0.001",
        "--rate-failed-auth-per-identity-address-burst",
        "5",
    )
    try:
        port = URL(node.url).port
        assert port is not None
        flood: Counter[int] = Counter()
        owner: Counter[int] = Counter()
        attackers = [
            threading.Thread(
                target=_get,
                args=("127.0.0.2", port, ADMIN_USER, [f"guess-{t}-{i}" for i in range(100)], flood),
            )
            for t in range(4)
        ]
        for thread in attackers:
            thread.start()
        _get("127.0.0.3", port, ADMIN_USER, [ADMIN_SECRET] * 20, owner)
        for thread in attackers:
            thread.join()
    finally:
        assert node.stop() == 0
    # four connections at once, and still exactly the burst was verified (each 401 of a distinct
    # guess is one hash)
    assert flood == {401: 5, 429: 395}
    assert owner == {200: 20}
