"""The operator console's first pages (issue 18) over a real socket: sign-in as the node
administrator only (the Basic secret check and its limits), a server-side session shared by every
worker, the review queue, approve and reject through the operator service with the note the
applicant reads in the portal, CSRF and cross-site refusals, sign-out ending the session."""

from __future__ import annotations

from tests.helpers import ADMIN_SECRET, basic
from tests.integration.test_portal import apply_form, csrf_of, sign_in


async def console_sign_in(client, identity: str = "300:0.NA/88.123", secret: str = ADMIN_SECRET):
    page = await client.get("/console/login")
    csrf = csrf_of(await page.text())
    return await client.post(
        "/console/login", data={"csrf": csrf, "identity": identity, "secret": secret}, allow_redirects=False
    )


async def applied(client, n: int) -> None:
    csrf = csrf_of(await (await client.get("/portal/apply")).text())
    from tests.enterprise_helpers import credit_code

    form = apply_form(
        csrf,
        name=f"申请企业{n}",
        creditCode=credit_code(70 + n),
        prefix=f"88.123.{70 + n}",
        username=f"app{n}",
    )
    assert (await client.post("/portal/apply", data=form, allow_redirects=False)).status == 201


async def test_the_operator_reviews_applications_and_the_applicant_reads_the_outcome(client):
    await applied(client, 1)
    await applied(client, 2)
    assert (await console_sign_in(client, secret="wrong-secret")).status == 401
    resp = await console_sign_in(client)
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith("console_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    html = await (await client.get("/console/")).text()
    assert "审核队列" in html and "88.123.71" in html and "88.123.72" in html and "申请企业1" in html
    csrf = csrf_of(html)
    # no CSRF token, or from another site: refused, nothing changes
    assert (
        await client.post(
            "/console/review", data={"prefix": "88.123.71", "decision": "approve"}, allow_redirects=False
        )
    ).status == 403
    cross = await client.post(
        "/console/review",
        data={"csrf": csrf, "prefix": "88.123.71", "decision": "approve"},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert cross.status == 403
    # a rejection needs its note
    assert (
        await client.post("/console/review", data={"csrf": csrf, "prefix": "88.123.72", "decision": "reject"})
    ).status == 400
    done = await client.post(
        "/console/review", data={"csrf": csrf, "prefix": "88.123.71", "decision": "approve"}
    )
    assert done.status == 200 and "已通过 88.123.71" in await done.text()
    done = await client.post(
        "/console/review",
        data={"csrf": csrf, "prefix": "88.123.72", "decision": "reject", "reason": "营业执照信息不符"},
    )
    html = await done.text()
    assert "已驳回 88.123.72" in html and "88.123.71" not in html.split("已驳回")[1]  # both left the queue
    # the outcome as the applicants see it
    assert (await sign_in(client, "app1", "carol-password-1")).status == 303
    assert "启用" in await (await client.get("/portal/")).text()
    client.session.cookie_jar.clear()  # another browser: app1 stays signed in elsewhere
    assert (await sign_in(client, "app2", "carol-password-1")).status == 303
    html = await (await client.get("/portal/")).text()
    assert "驳回" in html and "营业执照信息不符" in html
    audit = await (await client.get("/admin/audit?handle=0.na/88.123.72", headers=basic())).json()
    assert any(
        e["operation"] == "prefix.state" and e["actor"] == "300:0.NA/88.123" for e in audit["data"]["items"]
    )


async def test_only_the_node_administrator_gets_in_and_sign_out_ends_the_session(client):
    from tests.enterprise_helpers import admit

    _, secret = await admit(client, "88.123.45", 45)
    resp = await console_sign_in(client, "300:0.NA/88.123.45", secret)  # a prefix administrator
    assert resp.status == 403 and "节点管理员" in await resp.text()
    assert (await client.get("/console/", allow_redirects=False)).headers["Location"] == "/console/login"
    assert (await console_sign_in(client)).status == 303
    session = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))["console_session"].value
    csrf = csrf_of(await (await client.get("/console/")).text())
    assert (await client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    replay = await client.get(
        "/console/", headers={"Cookie": f"console_session={session}"}, allow_redirects=False
    )
    assert replay.status == 303 and replay.headers["Location"] == "/console/login"  # ended in Postgres


async def test_what_an_attack_review_of_applications_and_the_console_found(client):
    """Findings of the review of c2df7aa/0cf53a3: a stranger cannot apply for a prefix under which
    identifiers already live (nor list them before review); the overlap answer names no other
    enterprise; NUL and control characters are a 400, not a 500; a note too long is refused before
    anything changes; approve and reject act only on prefixes in review (a stale tab cannot
    re-enable a disabled prefix)."""
    resp = await client.put(
        "/api/handles/88.123.99/SECRET-1",
        json=[{"index": 1, "type": "URL", "data": "https://a"}],
        headers=basic(),
    )
    assert resp.status in (200, 201)
    csrf = csrf_of(await (await client.get("/portal/apply")).text())
    from tests.enterprise_helpers import credit_code

    claim = await client.post(
        "/portal/apply",
        data=apply_form(csrf, prefix="88.123.99", creditCode=credit_code(90), username="squat"),
        allow_redirects=False,
    )
    assert claim.status == 409 and "已有标识" in await claim.text()
    await applied(client, 5)  # 88.123.75
    csrf = csrf_of(await (await client.get("/portal/apply")).text())
    overlap = await client.post(
        "/portal/apply",
        data=apply_form(csrf, prefix="88.123.75.1", creditCode=credit_code(91), username="ov"),
        allow_redirects=False,
    )
    text = await overlap.text()
    assert overlap.status == 409 and "企业" not in text.split('role="alert">')[1].split("<")[0].replace(
        "前缀", ""
    )
    csrf = csrf_of(await (await client.get("/portal/apply")).text())
    nul = await client.post(
        "/portal/apply",
        data=apply_form(csrf, name="a\x00b", creditCode=credit_code(92), prefix="88.123.92", username="nul"),
        allow_redirects=False,
    )
    assert nul.status == 400
    assert (await console_sign_in(client)).status == 303
    csrf = csrf_of(await (await client.get("/console/")).text())
    long_note = await client.post(
        "/console/review",
        data={"csrf": csrf, "prefix": "88.123.75", "decision": "approve", "reason": "x" * 201},
    )
    assert long_note.status == 400
    state = await (await client.get("/admin/enterprises?page=0&pageSize=100", headers=basic())).json()
    assert state["status"] == 1
    bad = await client.post(
        "/console/review", data={"csrf": csrf, "prefix": "88.123.75\x00", "decision": "approve"}
    )
    assert bad.status == 400
    assert (
        await client.post(
            "/console/review", data={"csrf": csrf, "prefix": "88.123.75", "decision": "approve"}
        )
    ).status == 200
    assert (
        await client.put("/admin/prefixes/88.123.75/state", json={"state": 0}, headers=basic())
    ).status == 200
    stale = await client.post(
        "/console/review", data={"csrf": csrf, "prefix": "88.123.75", "decision": "approve"}
    )
    assert stale.status == 409
    listing = await (await client.get("/admin/enterprises?page=0&pageSize=100", headers=basic())).json()
    assert listing["status"] == 1
