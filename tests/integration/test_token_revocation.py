"""Enterprise API tokens end when they should: a new password, disabling, deletion, the operator's
revocation and a logout void them on this instance at once and on another instance on the same
database through the change feed; while the feed is down no kept state is trusted, and after it
comes back nothing learnt before is."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from resolver.http.app import change_feed, create_app
from resolver.http.keys import ACCOUNTS, LOOKUP
from resolver.services import accounts
from tests.enterprise_helpers import admit, bearer, user_token
from tests.faults import CuttableProxy
from tests.helpers import basic, no_rate_limits, serving

PASSWORD = "password-123"
VOID = "令牌已失效"
GONE = "账号不存在或已停用"
# How long another instance may take to hear of a change: the change feed's bound is 1 s; this only
# keeps a broken feed from hanging the test.
COHERENCE_WAIT = 10.0


@pytest.fixture
def config(config):
    return replace(config, rate=no_rate_limits())


@pytest.fixture
async def pair(config):
    """Two instances on one database."""
    async with serving(config) as one, serving(config) as two:
        yield one, two


async def templates(client, token: str) -> tuple[int, dict]:
    """An authenticated read that writes nothing: (HTTP status, envelope)."""
    resp = await client.get("/snms/api/v5/template", params={"prefix": "88.123.45"}, headers=bearer(token))
    return resp.status, await resp.json()


async def accepted(client, token: str) -> bool:
    status, body = await templates(client, token)
    assert (status, body["status"]) in ((200, 1), (401, -1)), body
    return status == 200


async def refused_with(client, token: str, message: str) -> None:
    status, body = await templates(client, token)
    assert status == 401 and body["status"] == -1 and message in body["message"], body


async def refused_soon(client, token: str, message: str) -> None:
    """Wait (bounded) until `client`'s instance refuses the token, then check why."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COHERENCE_WAIT
    while await accepted(client, token):
        assert loop.time() < deadline, "the other instance still accepts the token"
        await asyncio.sleep(0.01)
    await refused_with(client, token, message)


async def login(client, username: str, password: str = PASSWORD) -> str:
    body = await (
        await client.post("/identity/token", json={"username": username, "password": password})
    ).json()
    assert body["status"] == 1, body
    return str(body["data"]["token"])


async def user_id(client, enterprise_id: int, username: str) -> int:
    detail = (await (await client.get(f"/admin/enterprises/{enterprise_id}", headers=basic())).json())["data"]
    return next(u["id"] for u in detail["users"] if u["username"] == username)


async def operator(client, method: str, path: str, body: dict | None = None) -> dict:
    resp = await client.request(method, path, json=body, headers=basic())
    answer = await resp.json()
    assert resp.status == 200 and answer["status"] == 1, answer
    return answer


@pytest.fixture
async def acme(pair):
    """Enterprise 88.123.45 with user `acme`, its token accepted (and so kept) by both instances."""
    one, two = pair
    eid, _ = await admit(one, "88.123.45", 1)
    token = await user_token(one, eid, "acme", PASSWORD)
    assert await accepted(one, token) and await accepted(two, token)
    return eid, await user_id(one, eid, "acme"), token


async def test_a_new_password_voids_every_token_at_once_and_a_new_login_works(pair, acme):
    one, two = pair
    eid, uid, old = acme
    second = await login(two, "acme")
    assert await accepted(one, second)
    await operator(one, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"password": "another-password"})
    await refused_with(one, old, VOID)  # the instance that answered: at once
    await refused_with(one, second, VOID)
    await refused_soon(two, old, VOID)
    await refused_soon(two, second, VOID)
    refused = await two.post("/identity/token", json={"username": "acme", "password": PASSWORD})
    assert refused.status == 401
    fresh = await login(two, "acme", "another-password")
    assert await accepted(one, fresh) and await accepted(two, fresh)


async def test_a_disabled_user_is_refused_everywhere_and_enabling_does_not_revive_old_tokens(pair, acme):
    one, two = pair
    eid, uid, old = acme
    await operator(two, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"disabled": True})
    await refused_with(two, old, GONE)
    await refused_soon(one, old, GONE)
    await operator(two, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"disabled": False})
    await refused_with(two, old, VOID)
    await refused_soon(one, old, VOID)
    fresh = await login(one, "acme")
    assert await accepted(one, fresh) and await accepted(two, fresh)


async def test_a_deleted_user_is_refused_everywhere(pair, acme):
    one, two = pair
    eid, uid, old = acme
    answer = await operator(one, "DELETE", f"/admin/enterprises/{eid}/users/{uid}")
    assert "删除" in answer["message"]
    await refused_with(one, old, GONE)
    await refused_soon(two, old, GONE)
    assert (await two.post("/identity/token", json={"username": "acme", "password": PASSWORD})).status == 401
    detail = (await (await one.get(f"/admin/enterprises/{eid}", headers=basic())).json())["data"]
    assert detail["users"] == []
    again = await (await one.delete(f"/admin/enterprises/{eid}/users/{uid}", headers=basic())).json()
    assert again["status"] == -2 and str(uid) in again["message"]
    # the name is free again; the new account's tokens are its own, the old one's stay void
    fresh = await user_token(two, eid, "acme", "a-new-password")
    assert await accepted(one, fresh)
    await refused_with(one, old, GONE)
    trail = await (await one.get("/admin/audit", params={"enterprise": str(eid)}, headers=basic())).json()
    deleted = [e for e in trail["data"]["items"] if e["operation"] == "user.delete"]
    assert [e["before"] for e in deleted] == [{"userId": uid, "username": "acme"}]


async def test_the_operator_revokes_every_token_of_a_user(pair, acme):
    one, two = pair
    eid, uid, old = acme
    other = await login(one, "acme")
    answer = await operator(two, "DELETE", f"/admin/enterprises/{eid}/users/{uid}/tokens")
    assert "撤销" in answer["message"]
    for token in (old, other):
        await refused_with(two, token, VOID)
        await refused_soon(one, token, VOID)
    fresh = await login(one, "acme")  # the password still works
    assert await accepted(one, fresh) and await accepted(two, fresh)


async def test_logout_ends_the_presented_token_only(pair, acme):
    one, two = pair
    _, _, token = acme
    other = await login(two, "acme")
    resp = await one.post("/identity/logout", headers=bearer(token))
    body = await resp.json()
    assert resp.status == 200 and body["status"] == 1 and "已退出" in body["message"], body
    await refused_with(one, token, VOID)  # the instance that answered: at once
    await refused_soon(two, token, VOID)
    assert await accepted(one, other) and await accepted(two, other)
    # a retried logout (e.g. after a gateway timeout) succeeds and changes nothing
    again = await (await two.post("/identity/logout", headers=bearer(token))).json()
    assert again["status"] == 1 and "无需" in again["message"], again
    assert await accepted(two, other)
    # the token alone in Authorization, as the enterprise API accepts it
    raw = await (await two.post("/identity/logout", headers={"Authorization": other})).json()
    assert raw["status"] == 1 and "已退出" in raw["message"], raw
    await refused_with(two, other, VOID)


async def test_logout_needs_a_token_of_this_node(client):
    missing = await client.post("/identity/logout")
    assert missing.status == 401 and (await missing.json())["status"] == -1
    forged = await client.post("/identity/logout", headers=bearer("e30.c2lnbmF0dXJl"))
    body = await forged.json()
    assert forged.status == 401 and body["status"] == -1 and "令牌" in body["message"], body
    password = await client.post("/identity/logout", headers=basic("acme", PASSWORD))
    body = await password.json()
    assert password.status == 200 and body["status"] == -2 and "Bearer" in body["message"], body
    wrong_method = await client.get("/identity/logout")
    assert wrong_method.status == 405 and (await wrong_method.json())["status"] == -2


async def test_an_expired_token_is_logged_out_already(config):
    async with serving(replace(config, token_ttl=0.0)) as client:
        eid, _ = await admit(client, "88.123.45", 1)
        token = await user_token(client, eid, "acme", PASSWORD)
        await refused_with(client, token, "过期")
        body = await (await client.post("/identity/logout", headers=bearer(token))).json()
        assert body["status"] == 1 and "无需" in body["message"], body


async def test_logging_out_in_a_loop_ends_every_token_past_the_limit(client, config, monkeypatch):
    """The list of logged-out tokens a user holds is bounded: past it, a logout voids them all."""
    monkeypatch.setattr(accounts, "MAX_LOGGED_OUT_TOKENS", 3)
    eid, _ = await admit(client, "88.123.45", 1)
    keep = await user_token(client, eid, "acme", PASSWORD)
    for _ in range(3):
        token = await login(client, "acme")
        assert (await (await client.post("/identity/logout", headers=bearer(token))).json())["status"] == 1
        await refused_with(client, token, VOID)
        assert await accepted(client, keep)
    last = await login(client, "acme")
    assert (await (await client.post("/identity/logout", headers=bearer(last))).json())["status"] == 1
    await refused_with(client, last, VOID)
    await refused_with(client, keep, VOID)
    fresh = await login(client, "acme")
    assert await accepted(client, fresh)
    conn = await asyncpg.connect(config.dsn)
    try:
        kept = await conn.fetchval("select count(*) from revoked_tokens")
    finally:
        await conn.close()
    assert kept == 3  # the rows of the voided generation are pruned at the next logout, not read


async def test_a_tenant_cannot_revoke_or_delete_another_enterprises_users(pair):
    one, two = pair
    acme_id, acme_secret = await admit(one, "88.123.45", 1)
    rival_id, _ = await admit(one, "88.123.46", 2, name="对手企业")
    acme = await user_token(one, acme_id, "acme", PASSWORD)
    rival = await user_token(one, rival_id, "rival", PASSWORD)
    acme_uid = await user_id(one, acme_id, "acme")
    attempts = [
        ("DELETE", f"/admin/enterprises/{acme_id}/users/{acme_uid}"),
        ("DELETE", f"/admin/enterprises/{acme_id}/users/{acme_uid}/tokens"),
        ("PUT", f"/admin/enterprises/{acme_id}/users/{acme_uid}"),
    ]
    credentials = [
        bearer(rival),
        basic("rival", PASSWORD),
        basic("300:0.NA/88.123.46", "wrong"),
        bearer(acme),
    ]
    credentials.append(basic("300:0.NA/88.123.45", acme_secret))
    for method, path in attempts:
        for headers in credentials:
            resp = await two.request(
                method, path, json={"disabled": True, "password": "hijacked-1"}, headers=headers
            )
            body = await resp.json()
            assert resp.status in (401, 403) and body["status"] in (-1, -3), (method, path, body)
    # the operator naming the user under the wrong enterprise changes nothing either
    for method, path in [
        (m, p.replace(f"/enterprises/{acme_id}/", f"/enterprises/{rival_id}/")) for m, p in attempts
    ]:
        resp = await one.request(method, path, json={"disabled": True}, headers=basic())
        body = await resp.json()
        assert resp.status == 200 and body["status"] == -2 and "没有用户" in body["message"], body
    assert await accepted(one, acme) and await accepted(two, acme)
    assert await login(two, "acme")
    # a logout ends the caller's own token, whoever's handle the body names
    await two.post("/identity/logout", headers=bearer(rival), json={"token": acme, "userId": acme_uid})
    await refused_with(two, rival, VOID)
    assert await accepted(one, acme) and await accepted(two, acme)


@pytest.fixture
async def proxied_and_direct(config):
    """One instance reaching the database through a proxy the test cuts, one directly."""
    proxy = CuttableProxy(config.dsn)
    await proxy.start()
    async with (
        serving(replace(config, dsn=proxy.dsn, db_timeout=1.0)) as cut_off,
        serving(config) as direct,
    ):
        yield cut_off, direct, proxy
    await proxy.cut()


async def eventually(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_no_revocation_is_missed_while_the_change_feed_is_down(proxied_and_direct):
    """The instance behind the proxy keeps acme's state; its database (and feed) go away, the
    password changes meanwhile (its notification never reaches that instance). While down it
    accepts no token (503: it cannot tell); once back it has forgotten what it knew."""
    cut_off, direct, proxy = proxied_and_direct
    eid, _ = await admit(direct, "88.123.45", 1)
    token = await user_token(direct, eid, "acme", PASSWORD)
    uid = await user_id(direct, eid, "acme")
    assert await accepted(cut_off, token)
    states = cut_off.server.app[ACCOUNTS].states
    assert states.get(uid)[0]  # kept, and trusted

    await proxy.cut()
    await eventually(lambda: not states.trusted)
    status, body = await templates(cut_off, token)
    assert status == 503 and body["status"] == -4, body
    await operator(direct, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"password": "changed-while-down"})
    await refused_with(direct, token, VOID)

    await proxy.restore()
    await eventually(lambda: states.trusted and cut_off.server.app[LOOKUP].cache.trusted)
    await refused_with(cut_off, token, VOID)
    fresh = await login(direct, "acme", "changed-while-down")
    assert await accepted(cut_off, fresh)


async def test_a_state_kept_before_the_feed_went_down_is_not_trusted_after_it_returns(proxied_and_direct):
    """As above, without a request while the feed is down: only the flush on reconnect stands
    between the stale kept state and a revoked token."""
    cut_off, direct, proxy = proxied_and_direct
    eid, _ = await admit(direct, "88.123.45", 1)
    token = await user_token(direct, eid, "acme", PASSWORD)
    uid = await user_id(direct, eid, "acme")
    assert await accepted(cut_off, token)
    states = cut_off.server.app[ACCOUNTS].states
    await proxy.cut()
    await eventually(lambda: not states.trusted)
    await operator(direct, "DELETE", f"/admin/enterprises/{eid}/users/{uid}/tokens")
    await proxy.restore()
    await eventually(lambda: states.trusted)
    assert not states.get(uid)[0]
    await refused_with(cut_off, token, VOID)


@pytest.fixture
async def deaf(config):
    """An instance whose change feed is up but never delivers (as if every notification were late):
    what it refuses, it refuses because it made the change itself."""
    app = create_app(config)
    app.cleanup_ctx.remove(change_feed)
    async with TestClient(TestServer(app)) as client:
        app[ACCOUNTS].states.trusted = True
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PUT", "/admin/enterprises/{e}/users/{u}", {"password": "another-password"}, VOID),
        ("PUT", "/admin/enterprises/{e}/users/{u}", {"disabled": True}, GONE),
        ("DELETE", "/admin/enterprises/{e}/users/{u}", None, GONE),
        ("DELETE", "/admin/enterprises/{e}/users/{u}/tokens", None, VOID),
        ("POST", "/identity/logout", None, VOID),
    ],
    ids=["password", "disabled", "deleted", "revoked", "logout"],
)
async def test_the_worker_that_answered_refuses_at_once(deaf, method, path, body, message):
    eid, _ = await admit(deaf, "88.123.45", 1)
    token = await user_token(deaf, eid, "acme", PASSWORD)
    uid = await user_id(deaf, eid, "acme")
    assert await accepted(deaf, token)
    assert deaf.server.app[ACCOUNTS].states.get(uid)[0]  # kept: the next check would not read
    headers = bearer(token) if path == "/identity/logout" else basic()
    resp = await deaf.request(method, path.format(e=eid, u=uid), json=body, headers=headers)
    assert (await resp.json())["status"] == 1
    await refused_with(deaf, token, message)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/enterprises/abc/users/1",
        "/admin/enterprises/1/users/-1",
        "/admin/enterprises/1/users/99999999999999999999/tokens",
        "/admin/enterprises/１/users/1/tokens",
    ],
)
async def test_bad_ids_on_the_new_operator_routes_are_clear_errors(client, path):
    resp = await client.delete(path, headers=basic())
    body = await resp.json()
    assert resp.status == 200 and body["status"] == -2 and "整数" in body["message"], body


async def test_revocations_and_logouts_are_audited(client):
    eid, _ = await admit(client, "88.123.45", 1)
    token = await user_token(client, eid, "acme", PASSWORD)
    uid = await user_id(client, eid, "acme")
    await client.post("/identity/logout", headers=bearer(token))
    await operator(client, "DELETE", f"/admin/enterprises/{eid}/users/{uid}/tokens")
    await operator(client, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"disabled": True})
    trail = await (await client.get("/admin/audit", params={"enterprise": str(eid)}, headers=basic())).json()
    entries = [(e["operation"], e["actor"], e["detail"]) for e in reversed(trail["data"]["items"])]
    assert entries[-3:] == [
        ("user.logout", "user:acme", {"userId": uid, "everyToken": False}),
        ("user.tokens.revoke", "300:0.NA/88.123", {"userId": uid, "username": "acme"}),
        (
            "user.update",
            "300:0.NA/88.123",
            {"userId": uid, "passwordChanged": False, "disabled": True, "tokensRevoked": True},
        ),
    ]
