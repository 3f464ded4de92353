"""The portal's identifier pages (issue 18) over a real socket and real Postgres: the form made
from the general template, field-level messages from the template's own rules, the write through
the enterprise API's service, view, change, delete after confirmation; and another enterprise
refused on every page and form, whatever it puts in the URL or replays."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tests.portal_helpers import csrf_of, sign_in


async def test_register_through_the_template_form_with_field_messages_then_change_and_delete(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    page = await client.get("/portal/new")
    html = await page.text()
    assert page.status == 200 and "产品名称" in html and 'name="v2000"' in html and 'name="v2003"' in html
    csrf = csrf_of(html)
    bad = {
        "csrf": csrf,
        "prefix": "88.123.45",
        "template": "general-product-1.0",
        "suffix": "FORM-1",
        "v2000": "",
        "v2003": "2026-13-40",
        "v2004": "甲公司",
    }
    resp = await client.post("/portal/new", data=bad, allow_redirects=False)
    html = await resp.text()
    assert resp.status == 400
    # each message next to its field, in the template's own words
    assert re.search(r'id="error-v2000">缺少必填的模板条目 “产品名称”', html), html
    assert re.search(r'id="error-v2003">模板条目 “生产日期”\(productionDate, 索引 2003\) 要求日期', html)
    assert 'value="甲公司"' in html and 'value="FORM-1"' in html  # what was typed comes back
    assert (await client.get("/api/handles/88.123.45/FORM-1")).status == 404  # nothing written
    good = {**bad, "v2000": "螺栓 M8", "v2003": "2026-11-30"}
    resp = await client.post("/portal/new", data=good, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith(
        "/portal/record?handle=88.123.45/FORM-1"
    )
    view = await (await client.get(resp.headers["Location"])).text()
    assert "登记成功" in view and "螺栓 M8" in view and "2026-11-30" in view
    # the enterprise API sees what the form registered
    stored = await (await client.get("/api/handles/88.123.45/FORM-1")).json()
    assert {v["type"]: v["data"]["value"] for v in stored["values"]}["productName"] == "螺栓 M8"
    # a handle that exists already: the service's message at the top, nothing overwritten
    again = await client.post("/portal/new", data={**good, "v2000": "别的"}, allow_redirects=False)
    assert again.status == 400 and "已存在" in await again.text()
    # change: a value changed, a registered value cannot be cleared here
    edit = await (await client.get("/portal/edit?handle=88.123.45/FORM-1")).text()
    assert 'value="螺栓 M8"' in edit
    change = {"csrf": csrf, "handle": "88.123.45/FORM-1", "template": "general-product-1.0"}
    fields = {"v2000": "螺栓 M10", "v2003": "", "v2004": "甲公司"}
    resp = await client.post("/portal/edit", data={**change, **fields}, allow_redirects=False)
    assert resp.status == 400 and "已登记的值不能在此清空" in await resp.text()
    fields["v2003"] = "2026-12-01"
    resp = await client.post("/portal/edit", data={**change, **fields}, allow_redirects=False)
    assert resp.status == 303
    stored = await (await client.get("/api/handles/88.123.45/FORM-1")).json()
    assert {v["type"]: v["data"]["value"] for v in stored["values"]}["productName"] == "螺栓 M10"
    # delete: a confirmation page first, then the POST
    confirm = await (await client.get("/portal/delete?handle=88.123.45/FORM-1")).text()
    assert "确定要删除" in confirm and 'name="handle" value="88.123.45/FORM-1"' in confirm
    resp = await client.post("/portal/delete", data={"csrf": csrf, "handle": "88.123.45/FORM-1"})
    assert resp.status == 200 and "已删除" in await resp.text()
    assert (await client.get("/api/handles/88.123.45/FORM-1")).status == 404


async def test_another_enterprise_can_neither_see_nor_change_them_through_any_page(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    alice_csrf = csrf_of(await (await client.get("/portal/")).text())
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "bob")).status == 303
    csrf = csrf_of(await (await client.get("/portal/")).text())
    for path in ("/portal/record", "/portal/edit", "/portal/delete"):
        resp = await client.get(f"{path}?handle=88.123.45/P-1")
        assert resp.status == 403 and "不是本企业的标识" in await resp.text(), path
    # bob's own session and token, alice's prefix in the form: refused, nothing written
    form = {"csrf": csrf, "prefix": "88.123.45", "template": "general-product-1.0", "suffix": "X"}
    resp = await client.post("/portal/new", data={**form, "v2000": "x", "v2004": "y"})
    assert resp.status == 403
    resp = await client.post(
        "/portal/edit",
        data={"csrf": csrf, "handle": "88.123.45/P-1", "template": "general-product-1.0", "v2000": "z"},
    )
    assert resp.status == 403
    resp = await client.post("/portal/delete", data={"csrf": csrf, "handle": "88.123.45/P-1"})
    assert resp.status == 403
    # a form of alice's replayed in bob's session: her CSRF token is not his session's
    resp = await client.post("/portal/delete", data={"csrf": alice_csrf, "handle": "88.123.46/none"})
    assert resp.status == 403 and "CSRF" in await resp.text()
    # a sub-prefix under bob's own, or the prefix handle itself, is not a record page either
    resp = await client.get("/portal/record?handle=0.NA/88.123.46")
    assert resp.status in (403, 404)
    assert (await client.get("/api/handles/88.123.45/P-1")).status == 200  # untouched


async def test_find_by_the_start_of_the_handle_the_day_and_a_template_items_value(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    html = await (await client.get("/portal/", params={"prefix": "88.123.45", "starts": "P-1"})).text()
    assert "88.123.45/P-1" in html and "88.123.45/P-0" not in html and 'id="found">找到 1 ' in html
    html = await (await client.get("/portal/", params={"item": "productName", "value": "螺栓"})).text()
    assert all(f"88.123.45/P-{n}" in html for n in range(3))
    html = await (await client.get("/portal/", params={"item": "productName", "value": "没有"})).text()
    assert 'id="found">找到 0 ' in html
    today = datetime.now(UTC).date().isoformat()
    html = await (await client.get("/portal/", params={"from": today, "to": today})).text()
    assert "88.123.45/P-2" in html
    html = await (await client.get("/portal/", params={"to": "2000-01-01"})).text()
    assert 'id="found">找到 0 ' in html
    # wildcards are characters, a bad day is a message
    html = await (await client.get("/portal/", params={"starts": "%"})).text()
    assert 'id="found">找到 0 ' in html
    assert (await client.get("/portal/", params={"from": "yesterday"})).status == 400
    # another enterprise's prefix in the URL: its own prefix is searched instead
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "bob")).status == 303
    html = await (await client.get("/portal/", params={"prefix": "88.123.45", "starts": "P"})).text()
    assert "88.123.45/P-" not in html
