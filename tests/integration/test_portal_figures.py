"""The portal's figures, credentials and audit pages (issue 18) over a real socket and real
Postgres: the counts `resolver stats` reads, drawn as SVG; the enterprise's users and the one-time
display of a replaced Handle secret that then authenticates; the enterprise's own audit entries."""

from __future__ import annotations

import base64
import re

from resolver.http.keys import DAILY, STORE
from tests.enterprise_helpers import bearer, product
from tests.portal_helpers import csrf_of, sign_in


async def test_figures_move_with_registrations_and_resolutions(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    await client.app[DAILY].flush(client.app[STORE])
    before = await (await client.get("/portal/figures")).text()
    registered = int(re.search(r'id="registrations-30d">(\d+)<', before).group(1))
    assert registered >= 3 and before.count("<svg") == 3 and "<script" not in before
    login = {"username": "alice", "password": "password-123"}
    token = (await (await client.post("/identity/token", json=login)).json())["data"]["token"]
    await client.post("/identityv2/data", json=product("88.123.45/F-1"), headers=bearer(token))
    for _ in range(4):
        assert (await client.get("/api/handles/88.123.45/F-1")).status == 200
    await client.app[DAILY].flush(client.app[STORE])
    after = await (await client.get("/portal/figures?prefix=88.123.45")).text()
    assert int(re.search(r'id="registrations-30d">(\d+)<', after).group(1)) == registered + 1
    assert int(re.search(r'id="resolutions-30d">(\d+)<', after).group(1)) >= 4
    # bob's figures count none of alice's
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "bob")).status == 303
    bob = await (await client.get("/portal/figures?prefix=88.123.45")).text()
    assert re.search(r'id="registrations-30d">0<', bob)


async def test_a_replaced_secret_is_shown_once_and_works_and_the_audit_is_the_enterprises(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    page = await (await client.get("/portal/credentials")).text()
    assert "alice" in page and "300:0.NA/88.123.45" in page and "88.123.46" not in page
    csrf = csrf_of(page)
    resp = await client.post("/portal/credentials", data={"csrf": csrf, "prefix": "88.123.45"})
    html = await resp.text()
    secret = re.search(r'<code id="secret">([^<]+)</code>', html).group(1)
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    # the new secret authenticates the prefix administrator over the Handle API
    auth = base64.b64encode(f"300%3A0.NA/88.123.45:{secret}".encode()).decode()
    resp = await client.get("/api/handles/0.NA/88.123.45", headers={"Authorization": f"Basic {auth}"})
    assert resp.status == 200
    wrong = base64.b64encode(b"300%3A0.NA/88.123.45:not-the-secret-at-all").decode()
    resp = await client.get("/api/handles/0.NA/88.123.45", headers={"Authorization": f"Basic {wrong}"})
    assert resp.status == 401  # credentials sent are checked, so the 200 above was the new secret's
    assert secret not in await (await client.get("/portal/credentials")).text()  # shown once
    # another enterprise's prefix: as if it were not allocated
    resp = await client.post("/portal/credentials", data={"csrf": csrf, "prefix": "88.123.46"})
    assert resp.status == 404
    audit = await (await client.get("/portal/audit")).text()
    assert "prefix.credentials.rotate" in audit and "88.123.45/p-0" in audit.lower()
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "bob")).status == 303
    theirs = await (await client.get("/portal/audit")).text()
    assert "88.123.45" not in theirs
