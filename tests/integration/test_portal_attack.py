"""What an attack review of the portal and console pages found (issue 18, helper report on
c2df7aa..a later head), each reproduced here against the real app and Postgres: a workbook that
expands a thousandfold, a workbook declaring 16,384 columns, concurrent uploads of one enterprise,
repeated multipart fields, a secret replaced for a prefix on its way out, calendar-edge times, a
disabled console account's old session (in the console and as a Handle API session), a stale
approval, long product names on labels, and console names in an enterprise's audit page."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile

import aiohttp
import pytest

from resolver.core.enterprises import PrefixState
from resolver.core.errors import HandleError
from resolver.core.permissions import Identity
from resolver.http.keys import HANDLE_SESSIONS, OPERATORS
from resolver.services.labels import _font, _lines
from tests.helpers import basic
from tests.integration.test_console import console_sign_in
from tests.integration.test_portal_uploads import finished, send, workbook
from tests.portal_helpers import csrf_of, sign_in


async def _alice(client) -> str:
    assert (await sign_in(client, "alice")).status == 303
    return csrf_of(await (await client.get("/portal/upload")).text())


async def test_a_workbook_that_expands_a_thousandfold_is_refused_before_it_is_read(tenants):
    client = tenants
    csrf = await _alice(client)
    book = io.BytesIO(workbook([["handle", "产品名称"], ["88.123.45/Z-1", "x"]]))
    bomb = io.BytesIO()
    with zipfile.ZipFile(book) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            out.writestr(member, source.read(member.filename))
        out.writestr("xl/padding.xml", b"a" * (20 << 20))  # 20 MiB that deflate to some 20 KiB
    resp = await send(client, csrf, bomb.getvalue(), "bomb.xlsx", "general-product-1.0")
    assert resp.status == 400 and "解压后过大" in await resp.text()


async def test_a_workbook_declaring_every_column_is_read_as_it_is(tenants):
    client = tenants
    csrf = await _alice(client)
    book = io.BytesIO(workbook([["handle", "产品名称", "生产企业"], ["88.123.45/WIDE-1", "x", "甲"]]))
    wide = io.BytesIO()
    with zipfile.ZipFile(book) as source, zipfile.ZipFile(wide, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]+"\s*/>', b'<dimension ref="A1:XFD1048576"/>', data)
            out.writestr(member, data)
    resp = await send(client, csrf, wide.getvalue(), "wide.xlsx", "general-product-1.0")
    assert resp.status == 303
    html = await finished(client, resp.headers["Location"])
    assert re.search(r'id="accepted">1<', html), html


async def test_one_enterprise_starts_one_upload_at_a_time_however_many_arrive(tenants):
    client = tenants
    csrf = await _alice(client)
    rows = [["handle", "产品名称", "生产企业"]] + [[f"88.123.45/C-{n}", "x", "甲"] for n in range(6000)]
    body = workbook(rows)
    answers = await asyncio.gather(
        *(send(client, csrf, body, f"c{n}.xlsx", "general-product-1.0") for n in range(6))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses.count(303) == 1 and statuses.count(503) == 5, statuses
    location = next(a.headers["Location"] for a in answers if a.status == 303)
    await finished(client, location)


async def test_multipart_fields_come_once_and_short(tenants):
    client = tenants
    csrf = await _alice(client)
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("template", "a")
    form.add_field("template", "b")
    form.add_field("file", b"handle\r\n", filename="x.csv")
    assert (await client.post("/portal/upload", data=form)).status == 400
    form = aiohttp.FormData()
    form.add_field("csrf", csrf)
    form.add_field("template", "t" * 5000)
    form.add_field("file", b"handle\r\n", filename="x.csv")
    assert (await client.post("/portal/upload", data=form)).status == 400


async def test_a_secret_is_not_replaced_for_a_prefix_on_its_way_out(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    csrf = csrf_of(await (await client.get("/portal/credentials")).text())
    resp = await client.put("/admin/prefixes/88.123.45/state", json={"state": 2}, headers=basic())
    assert (await resp.json())["status"] == 1
    resp = await client.post("/portal/credentials", data={"csrf": csrf, "prefix": "88.123.45"})
    assert resp.status == 409 and "secret" not in await resp.text()


async def test_times_at_the_calendar_edge_are_a_message_not_a_500(client):
    assert (await console_sign_in(client)).status == 303
    for edge in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"):
        resp = await client.get("/console/audit", params={"from": edge})
        assert resp.status == 400, edge


async def test_a_changed_console_account_is_signed_out_and_its_session_is_no_handle_session(client):
    assert (await console_sign_in(client)).status == 303
    csrf = csrf_of(await (await client.get("/console/operators")).text())
    create = {
        "csrf": csrf,
        "action": "create",
        "username": "op2",
        "password": "console-pass-2",
        "role": "operator",
    }
    assert (await client.post("/console/operators", data=create, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    assert (await console_sign_in(client, "op2", "console-pass-2")).status == 303
    session_id = client.session.cookie_jar.filter_cookies(client.make_url("/console/"))[
        "console_session"
    ].value
    sessions = client.app[HANDLE_SESSIONS]
    opened = sessions.open(session_id)
    assert opened is not None and await sessions.identity(opened) is None  # not for the Handle API
    assert (await sessions.identity(opened, console=True)) is not None
    client.session.cookie_jar.clear()
    assert (await console_sign_in(client)).status == 303
    for disabled in ("1", "0"):  # disabled, then enabled again: the old session stays ended
        change = {
            "csrf": csrf_of(await (await client.get("/console/operators")).text()),
            "action": "change",
            "username": "op2",
            "role": "operator",
            "disabled": disabled,
        }
        assert (await client.post("/console/operators", data=change, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    resp = await client.get(
        "/console/", headers={"Cookie": f"console_session={session_id}"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"


async def test_a_stale_approval_does_not_enable_a_prefix_disabled_meanwhile(tenants):
    client = tenants
    operators = client.app[OPERATORS]
    actor = Identity(300, "0.na/88.123", "0.NA/88.123")  # the node administrator
    await operators.set_prefix_state("88.123.45", {"state": 0}, actor)  # disabled by an operator
    with pytest.raises(HandleError) as refused:
        await operators.set_prefix_state(
            "88.123.45", {"state": 1}, actor, frozenset({PrefixState.UNDER_REVIEW})
        )
    assert refused.value.status == 409
    info = await (await client.get("/admin/enterprises", headers=basic())).json()
    first = info["data"]["items"][0]["id"]
    found = await (await client.get(f"/admin/enterprises/{first}", headers=basic())).json()
    assert found["data"]["prefixes"][0]["state"] == 0


def test_a_product_name_of_any_length_is_cut_to_its_lines():
    lines = _lines("不锈钢六角头螺栓" * 2000, _font(), 8, 80, 2)
    assert len(lines) == 2 and lines[-1].endswith("…")


async def test_an_enterprise_reads_the_node_operator_not_console_names(tenants):
    client = tenants
    assert (await console_sign_in(client)).status == 303
    csrf = csrf_of(await (await client.get("/console/operators")).text())
    create = {
        "csrf": csrf,
        "action": "create",
        "username": "op3",
        "password": "console-pass-3",
        "role": "operator",
    }
    assert (await client.post("/console/operators", data=create, allow_redirects=False)).status == 303
    client.session.cookie_jar.clear()
    assert (await console_sign_in(client, "op3", "console-pass-3")).status == 303
    csrf = csrf_of(await (await client.get("/console/enterprises")).text())
    rotate = {"csrf": csrf, "prefix": "88.123.45", "action": "rotate"}
    assert (await client.post("/console/prefix", data=rotate)).status == 200
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "alice")).status == 303
    audit = await (await client.get("/portal/audit")).text()
    assert "prefix.credentials.rotate" in audit and "console:op3" not in audit and "节点运营方" in audit


async def test_an_upload_stops_when_its_user_is_disabled(tenants):
    client = tenants
    csrf = await _alice(client)
    rows = [["handle", "产品名称", "生产企业"]] + [[f"88.123.45/D-{n}", "x", "甲"] for n in range(20_000)]
    resp = await send(client, csrf, workbook(rows), "long.xlsx", "general-product-1.0")
    assert resp.status == 303
    listing = await (await client.get("/admin/enterprises", headers=basic())).json()
    first = listing["data"]["items"][0]["id"]
    users = (await (await client.get(f"/admin/enterprises/{first}", headers=basic())).json())["data"]["users"]
    alice = next(u["id"] for u in users if u["username"] == "alice")
    disabled = await client.put(
        f"/admin/enterprises/{first}/users/{alice}", json={"disabled": True}, headers=basic()
    )
    assert (await disabled.json())["status"] == 1
    upload_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    from resolver.http.keys import STORE
    from resolver.store import uploads

    for _ in range(600):  # bounded: 60 s
        found = await uploads.upload_of(client.app[STORE], upload_id, first)
        if found is not None and found.state != "running":
            break
        await asyncio.sleep(0.1)
    assert found is not None and found.state == "failed" and "停用" in found.message
    assert found.accepted < 20_000
