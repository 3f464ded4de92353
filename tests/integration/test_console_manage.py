"""The console's roles and running pages (issue 18) over a real socket and real Postgres: the node
administrator creates a reviewer and an operator; each gets exactly its role's pages and forms;
an operator finds enterprises by name, credit code or prefix, changes a prefix's state, replaces
its Handle secret (shown once), reads the node's standing and searches the audit trail, where its
own acts are named; a disabled account is signed out on its next request."""

from __future__ import annotations

import re

from tests.enterprise_helpers import admit, credit_code
from tests.helpers import basic
from tests.integration.test_console import console_sign_in
from tests.portal_helpers import csrf_of


async def test_roles_and_the_operators_pages(client):
    await admit(client, "88.123.45", 45, "甲机械有限公司")
    assert (await console_sign_in(client)).status == 303
    csrf = csrf_of(await (await client.get("/console/operators")).text())
    for name, role in (("rev1", "reviewer"), ("op1", "operator")):
        form = {
            "csrf": csrf,
            "action": "create",
            "username": name,
            "password": "console-pass-1",
            "role": role,
        }
        assert (await client.post("/console/operators", data=form, allow_redirects=False)).status == 303
    listing = await (await client.get("/console/operators")).text()
    assert "rev1" in listing and "op1" in listing and "console-pass-1" not in listing
    # a short password, a taken name: refused with the reason
    bad = {
        "csrf": csrf,
        "action": "create",
        "username": "rev1",
        "password": "console-pass-1",
        "role": "reviewer",
    }
    assert (await client.post("/console/operators", data=bad)).status == 409
    client.session.cookie_jar.clear()

    # the reviewer: the queue, nothing else
    assert (await console_sign_in(client, "rev1", "console-pass-1")).status == 303
    assert (await client.get("/console/")).status == 200
    for path in ("/console/enterprises", "/console/node", "/console/audit", "/console/operators"):
        assert (await client.get(path)).status == 403, path
    csrf = csrf_of(await (await client.get("/console/")).text())
    resp = await client.post(
        "/console/prefix", data={"csrf": csrf, "prefix": "88.123.45", "action": "rotate"}
    )
    assert resp.status == 403
    client.session.cookie_jar.clear()
    assert (await console_sign_in(client, "rev1", "wrong-password-x")).status == 401

    # the operator: enterprises, prefixes, the node, the audit; not the accounts
    assert (await console_sign_in(client, "op1", "console-pass-1")).status == 303
    for query in ("甲机械", credit_code(45), "88.123.4"):
        html = await (await client.get("/console/enterprises", params={"q": query})).text()
        assert "甲机械有限公司" in html, query
    html = await (await client.get("/console/enterprises", params={"q": "%"})).text()
    assert "甲机械有限公司" not in html  # a wildcard is a character to look for, not a pattern
    csrf = csrf_of(html)
    assert (await client.get("/console/operators")).status == 403
    change = {"csrf": csrf, "prefix": "88.123.45", "action": "state", "state": "0", "reason": "年检未过"}
    assert (await client.post("/console/prefix", data=change, allow_redirects=False)).status == 303
    enterprises = await (await client.get("/admin/enterprises", headers=basic())).json()
    enterprise_id = enterprises["data"]["items"][0]["id"]
    found = await (await client.get(f"/admin/enterprises/{enterprise_id}", headers=basic())).json()
    assert found["data"]["prefixes"][0]["state"] == 0  # disabled, through the operator service
    resp = await client.post(
        "/console/prefix", data={"csrf": csrf, "prefix": "88.123.45", "action": "rotate"}
    )
    secret = re.search(r'<code id="secret">([^<]+)</code>', await resp.text())
    assert resp.status == 200 and secret
    node = await (await client.get("/console/node")).text()
    assert "政策门槛" in node and node.count("<svg") == 2 and 'id="outbox"' in node
    audit = await (await client.get("/console/audit", params={"handle": "0.NA/88.123.45"})).text()
    assert "prefix.credentials.rotate" in audit and "console:op1" in audit
    bad_time = await client.get("/console/audit", params={"from": "yesterday"})
    assert bad_time.status == 400

    # the administrator disables the operator: its session ends on its next request
    operator_cookies = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))
    session = operator_cookies["console_session"].value
    client.session.cookie_jar.clear()
    assert (await console_sign_in(client)).status == 303
    csrf = csrf_of(await (await client.get("/console/operators")).text())
    form = {"csrf": csrf, "action": "change", "username": "op1", "role": "operator", "disabled": "1"}
    assert (await client.post("/console/operators", data=form, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    resp = await client.get(
        "/console/enterprises", headers={"Cookie": f"console_session={session}"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def test_the_node_page_lists_this_workers_recent_warnings(client):
    import logging

    from resolver.logs import RECENT

    root = logging.getLogger()
    root.addHandler(RECENT)  # what setup_logging does in `resolver serve`
    try:
        logging.getLogger("resolver.probe").warning("探针 <b>%s</b>", "outbox stalled")
        logging.getLogger("resolver.probe").info("not a problem")
        assert (await console_sign_in(client)).status == 303
        html = await (await client.get("/console/node")).text()
    finally:
        root.removeHandler(RECENT)
    assert "探针 &lt;b&gt;outbox stalled&lt;/b&gt;" in html and "not a problem" not in html
