"""The enterprise portal's first pages (issue 18) over a real socket: sign-in with the enterprise
API's accounts, the session cookie's flags, CSRF on every form, failed sign-ins limited, a
tenant that sees only its own identifiers whatever it puts in the URL, sign-out voiding the
session on the spot, expiry, and the language switch. (The browser journey comes with the pages
that need one.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from tests.enterprise_helpers import admit, bearer, credit_code, product, user_token
from tests.helpers import basic, serving
from tests.portal_helpers import cookie_header, csrf_of, sign_in


async def test_sign_in_sets_a_strict_http_only_session_and_lists_the_enterprises_identifiers(tenants):
    client = tenants
    page = await client.get("/portal/login")
    assert page.status == 200 and "企业用户登录" in await page.text()
    assert (
        "default-src 'none'" in page.headers["Content-Security-Policy"]
        and page.headers["Cache-Control"] == "no-store"
    )
    pre = cookie_header(page, "portal_csrf")
    assert "HttpOnly" in pre and "SameSite=Strict" in pre and "Path=/portal" in pre
    resp = await sign_in(client, "alice")
    assert resp.status == 303 and resp.headers["Location"] == "/portal/"
    session = cookie_header(resp, "portal_session")
    assert (
        "HttpOnly" in session and "SameSite=Strict" in session and "Secure" not in session
    )  # plain HTTP here
    listing = await client.get("/portal/")
    html = await listing.text()
    assert listing.status == 200 and "我的标识" in html
    assert all(f"88.123.45/P-{n}" in html for n in range(3))
    english = await (await client.get("/portal/?lang=en")).text()
    assert "My identifiers" in english and "In all" in english


async def test_a_tenant_sees_only_its_own_identifiers_whatever_the_url_says(tenants):
    client = tenants
    assert (await sign_in(client, "bob")).status == 303
    html = await (await client.get("/portal/?prefix=88.123.45")).text()
    assert "88.123.45/P-" not in html and "88.123.46" in html  # its own prefix, not the one asked for
    # the rule is the Registry's, which every API and page calls
    from resolver.http.keys import REGISTRY
    from resolver.services.accounts import user_identity

    registry = client.app[REGISTRY]
    outsider = user_identity(999, 2, "bob")
    with pytest.raises(Exception, match="not its enterprise"):
        await registry.list_handles("88.123.45", 0, 10, outsider)


async def test_forms_without_their_csrf_token_are_refused(tenants):
    client = tenants
    resp = await client.post(
        "/portal/login", data={"username": "alice", "password": "password-123"}, allow_redirects=False
    )
    assert resp.status == 403 and "CSRF" in await resp.text()
    assert "portal_session" not in resp.cookies
    assert (await sign_in(client, "alice")).status == 303
    resp = await client.post("/portal/logout", data={}, allow_redirects=False)
    assert resp.status == 403
    assert (await client.get("/portal/", allow_redirects=False)).status == 200  # still signed in


async def test_sign_out_voids_the_session_everywhere_and_wrong_passwords_are_limited(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    session = client.session.cookie_jar.filter_cookies(client.make_url("/portal/"))["portal_session"].value
    csrf = csrf_of(await (await client.get("/portal/")).text())
    resp = await client.post("/portal/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/portal/login"
    # the old cookie, replayed, no longer signs in (the token is voided, not only forgotten here)
    replay = await client.get(
        "/portal/", headers={"Cookie": f"portal_session={session}"}, allow_redirects=False
    )
    assert replay.status == 303 and replay.headers["Location"] == "/portal/login"
    statuses = []
    for _ in range(30):
        statuses.append((await sign_in(client, "alice", "wrong-password")).status)
        if statuses[-1] == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses


async def test_a_session_ends_with_its_token(config):
    async with serving(replace(config, token_ttl=1.0)) as client:
        eid, _ = await admit(client, "88.123.45", 45)
        await user_token(client, eid, "carol")
        assert (await sign_in(client, "carol")).status == 303
        assert (await client.get("/portal/", allow_redirects=False)).status == 200
        await asyncio.sleep(2.1)
        resp = await client.get("/portal/", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/portal/login"


async def test_the_database_away_is_a_page_that_says_so(config):
    """Postgres unreachable: the portal answers 503 with Retry-After and a page, never a bare 500."""
    from tests.faults import CuttableProxy

    proxy = CuttableProxy(config.dsn)
    await proxy.start()
    try:
        async with serving(replace(config, dsn=proxy.dsn, db_timeout=1.0)) as client:
            eid, _ = await admit(client, "88.123.45", 45)
            await user_token(client, eid, "dave")
            assert (await sign_in(client, "dave")).status == 303
            await proxy.cut()
            resp = await client.get("/portal/", allow_redirects=False)
            assert resp.status == 503 and resp.headers["Retry-After"], await resp.text()
            assert "数据库" in await resp.text() or "稍后" in await resp.text()
    finally:
        await proxy.cut()


async def test_what_an_attack_review_of_the_portal_found(tenants):
    """Findings of the review of 14f0465: odd form bodies are a 4xx page, never a 500; a POST from
    another site is refused whatever its tokens; a bad session cookie does not lock the address
    out of signing in, and is forgotten; duplicate session cookies sign nobody in; logout without
    a session deletes nothing; an undelegated sub-prefix is listed by its enterprise only; paging
    past the end gives the last page."""
    client = tenants
    page = await client.get("/portal/login")
    csrf = csrf_of(await page.text())
    odd = [
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            f"csrf={csrf}&username=%FF%FE&password=x".encode(),
        ),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "csrf=é&username=a&password=b".encode()),
        ({"Content-Type": "application/x-www-form-urlencoded; charset=bogus"}, b"csrf=x"),
        ({"Content-Type": "multipart/form-data"}, b"garbage"),
        ({"Content-Type": "application/json"}, b'{"username": "alice"}'),
        ({"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}, b"\x1f\x8b"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=" + b"x" * 20_000),
    ]
    for headers, body in odd:
        resp = await client.post("/portal/login", data=body, headers=headers, allow_redirects=False)
        assert 400 <= resp.status < 500, (headers, body[:40], resp.status)
        assert resp.headers.get("Content-Security-Policy"), resp.headers
    # another site's POST, with perfectly matching tokens
    for cross in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        resp = await client.post(
            "/portal/login",
            data={"csrf": csrf, "username": "alice", "password": "password-123"},
            headers=cross,
            allow_redirects=False,
        )
        assert resp.status == 403, cross
    # a planted, bad session cookie: 20 visits, then a normal sign-in still works
    for _ in range(20):
        resp = await client.get(
            "/portal/", headers={"Cookie": "portal_session=garbage.x"}, allow_redirects=False
        )
        assert resp.status == 303 and "portal_session=" in resp.headers.get("Set-Cookie", "")
    assert (await sign_in(client, "alice")).status == 303
    session = client.session.cookie_jar.filter_cookies(client.make_url("/portal/"))["portal_session"].value
    client.session.cookie_jar.clear()  # only the Cookie header below
    twice = await client.get(
        "/portal/", headers={"Cookie": f"portal_session=x; portal_session={session}"}, allow_redirects=False
    )
    assert twice.status == 303  # two session cookies: nobody
    # the enterprise's undelegated sub-prefix is its to list; another enterprise's is not
    token = await user_token(client, 1, "alice2")
    body = await (
        await client.post("/identityv2/data", json=product("88.123.45.7/SUB-1"), headers=bearer(token))
    ).json()
    assert body["status"] == 1, body
    from resolver.http.keys import REGISTRY
    from resolver.services.accounts import user_identity

    registry = client.app[REGISTRY]
    _total, handles = await registry.list_handles("88.123.45.7", 0, 10, user_identity(1, 1, "alice"))
    assert handles == ["88.123.45.7/SUB-1"]
    with pytest.raises(Exception, match="not its enterprise"):
        await registry.list_handles("88.123.45.7", 0, 10, user_identity(2, 2, "bob"))
    # far past the end: the last page, not a scan to offset 50 million
    assert (await sign_in(client, "alice")).status == 303
    html = await (await client.get("/portal/?page=999999")).text()
    assert "88.123.45/P-0" in html


def apply_form(csrf: str, **overrides: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "name": "丙公司",
        "creditCode": credit_code(47),
        "contact_name": "王五",
        "contact_phone": "13700000000",
        "contact_email": "",
        "prefix": "88.123.47",
        "username": "carol",
        "password": "carol-password-1",
    }
    return {**form, **overrides}


async def test_an_enterprise_applies_waits_for_review_and_sees_its_prefix_enabled(client):
    """Apply from the portal (the operator API's rules, all or nothing), sign in with the account
    given while the prefix awaits review, the operator approves in the existing life cycle, the
    portal shows it enabled and the account registers identifiers."""
    page = await client.get("/portal/apply")
    assert page.status == 200 and "申请企业前缀" in await page.text()
    csrf = csrf_of(await page.text())
    # a refusal first: the check digit of the credit code, shown with what was typed
    bad = await client.post(
        "/portal/apply", data=apply_form(csrf, creditCode="91320000000000000X"), allow_redirects=False
    )
    html = await bad.text()
    assert (
        bad.status == 400
        and "统一社会信用代码" in html
        and "丙公司" in html
        and "carol-password-1" not in html
    )
    done = await client.post("/portal/apply", data=apply_form(csrf), allow_redirects=False)
    assert done.status == 201 and "待审核" in await done.text()
    # the same prefix again: taken, and nothing half-made (no second enterprise, no account)
    page = await client.get("/portal/apply")
    again = await client.post(
        "/portal/apply",
        data=apply_form(
            csrf_of(await page.text()), name="丁公司", creditCode=credit_code(48), username="dan"
        ),
        allow_redirects=False,
    )
    assert again.status == 409 and "88.123.47" in await again.text()
    assert (await sign_in(client, "dan", "carol-password-1")).status == 401
    listing = await client.get("/admin/enterprises", headers=basic())
    names = [e["name"] for e in (await listing.json())["data"]["items"]]
    assert names.count("丙公司") == 1 and "丁公司" not in names

    assert (await sign_in(client, "carol", "carol-password-1")).status == 303
    assert "待审核" in await (await client.get("/portal/")).text()
    for state in (5, 1):
        resp = await client.put("/admin/prefixes/88.123.47/state", json={"state": state}, headers=basic())
        assert (await resp.json())["status"] == 1
    assert "启用" in await (await client.get("/portal/")).text()
    token = (
        await (
            await client.post("/identity/token", json={"username": "carol", "password": "carol-password-1"})
        ).json()
    )["data"]["token"]
    body = await (
        await client.post("/identityv2/data", json=product("88.123.47/FIRST"), headers=bearer(token))
    ).json()
    assert body["status"] == 1, body
    assert "88.123.47/FIRST" in await (await client.get("/portal/")).text()
    audit = await (await client.get("/admin/audit", headers=basic())).json()
    assert any(e["actor"].startswith("applicant:") for e in audit["data"]["items"])


async def test_applications_are_limited_and_need_their_form(client):
    page = await client.get("/portal/apply")
    csrf = csrf_of(await page.text())
    refused = await client.post(
        "/portal/apply",
        data={k: v for k, v in apply_form(csrf).items() if k != "csrf"},
        allow_redirects=False,
    )
    assert refused.status == 403
    cross = await client.post(
        "/portal/apply",
        data=apply_form(csrf),
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    assert cross.status == 403
    statuses = []
    for n in range(5):  # three an hour from one network (each from a form of its own)
        csrf = csrf_of(await (await client.get("/portal/apply")).text())
        form = apply_form(
            csrf, name=f"企业{n}", creditCode=credit_code(60 + n), prefix=f"88.123.{60 + n}", username=f"u{n}"
        )
        statuses.append((await client.post("/portal/apply", data=form, allow_redirects=False)).status)
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429], statuses
