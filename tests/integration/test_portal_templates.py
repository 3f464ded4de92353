"""The portal's template page (issue 18) over a real socket and real Postgres: a version copied from
the shared general template and one begun from scratch, an item added and disabled (and the form
then offering it no more), the template API's own refusals on the page, and no way into another
enterprise's templates."""

from __future__ import annotations

from tests.portal_helpers import csrf_of, sign_in


async def test_copy_extend_disable_and_the_form_follows(tenants):
    client = tenants
    assert (await sign_in(client, "alice")).status == 303
    page = await (await client.get("/portal/templates")).text()
    assert "general-product-1.0" in page and "产品名称" in page
    csrf = csrf_of(page)
    base = {"csrf": csrf, "prefix": "88.123.45"}
    resp = await client.post(
        "/portal/templates",
        data={
            **base,
            "action": "create",
            "version": "gear-1",
            "templateName": "齿轮",
            "base": "general-product-1.0",
        },
        allow_redirects=False,
    )
    assert resp.status == 303
    added = {
        **base,
        "action": "add",
        "version": "gear-1",
        "name": "模数",
        "idType": "module",
        "idIndex": "2100",
        "valueType": "number",
        "required": "1",
    }
    assert (await client.post("/portal/templates", data=added, allow_redirects=False)).status == 303
    form = await (await client.get("/portal/new?prefix=88.123.45&template=gear-1")).text()
    assert 'name="v2100"' in form and "模数" in form
    # the new required number item is checked with the template's rule
    entry = {
        "csrf": csrf,
        "prefix": "88.123.45",
        "template": "gear-1",
        "suffix": "G-1",
        "v2000": "齿轮",
        "v2004": "甲",
        "v2100": "两",
    }
    resp = await client.post("/portal/new", data=entry)
    assert resp.status == 400 and "要求数字" in await resp.text()
    resp = await client.post("/portal/new", data={**entry, "v2100": "2.5"}, allow_redirects=False)
    assert resp.status == 303
    # disabled: the form no longer offers it
    off = {**base, "action": "disable", "version": "gear-1", "idIndex": "2100"}
    assert (await client.post("/portal/templates", data=off, allow_redirects=False)).status == 303
    form = await (await client.get("/portal/new?prefix=88.123.45&template=gear-1")).text()
    assert 'name="v2100"' not in form
    # from scratch, then the service's refusals shown on the page
    scratch = {
        **base,
        "action": "create",
        "version": "bolt-1",
        "base": "",
        "name": "规格",
        "idType": "spec",
        "idIndex": "2000",
    }
    assert (await client.post("/portal/templates", data=scratch, allow_redirects=False)).status == 303
    again = await client.post("/portal/templates", data=scratch)
    assert again.status == 409 and "已存在" in await again.text()
    low = await client.post("/portal/templates", data={**scratch, "version": "bolt-2", "idIndex": "1001"})
    assert low.status == 400 and "2000" in await low.text()
    shared = {**base, "action": "disable", "version": "general-product-1.0", "idIndex": "2000"}
    assert (await client.post("/portal/templates", data=shared)).status == 400  # not this prefix's


async def test_another_enterprises_templates_are_out_of_reach(tenants):
    client = tenants
    assert (await sign_in(client, "bob")).status == 303
    page = await (await client.get("/portal/templates?prefix=88.123.45")).text()
    assert "88.123.46" in page
    csrf = csrf_of(page)
    form = {
        "csrf": csrf,
        "prefix": "88.123.45",
        "action": "create",
        "version": "x-1",
        "base": "general-product-1.0",
    }
    resp = await client.post("/portal/templates", data=form)
    assert resp.status == 403 and "不是本企业已启用的前缀" in await resp.text()
