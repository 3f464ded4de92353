"""The template API (/snms/api/v5/template) and registrations naming a template."""

from __future__ import annotations

from tests.enterprise_helpers import admit, bearer, user_token

TEMPLATE = {
    "prefix": "88.123.45",
    "version": "bolt-1",
    "industryCodes": ["C3482"],
    "items": [
        {
            "name": "规格",
            "idType": "size",
            "idIndex": 2000,
            "required": True,
            "metadata": {"type": "string", "maxLength": 10},
        },
        {"name": "数量", "idType": "count", "idIndex": 2001, "metadata": {"type": "number"}},
    ],
}


async def test_define_use_extend_and_never_delete(client):
    eid, _ = await admit(client, "88.123.45", 30)
    token = await user_token(client, eid, "tpl")
    created = await (await client.post("/snms/api/v5/template", json=TEMPLATE, headers=bearer(token))).json()
    assert created["status"] == 1 and created["data"]["version"] == "bolt-1"
    again = await (await client.post("/snms/api/v5/template", json=TEMPLATE, headers=bearer(token))).json()
    assert again["status"] == -2 and "已存在" in again["message"]
    listed = await (
        await client.get("/snms/api/v5/template", params={"prefix": "88.123.45"}, headers=bearer(token))
    ).json()
    assert {t["version"] for t in listed["data"]} == {"bolt-1", "general-product-1.0"}

    item = {
        "handle": "88.123.45/T-1",
        "templateVersion": "bolt-1",
        "value": [
            {"index": 2000, "type": "size", "data": {"format": "string", "value": "M8"}},
            {"index": 2001, "type": "count", "data": {"format": "string", "value": "many"}},
        ],
    }
    bad = await (await client.post("/identityv2/data", json=item, headers=bearer(token))).json()
    assert bad["status"] == -2 and "数量" in bad["message"] and "数字" in bad["message"]
    item["value"][1]["data"]["value"] = "100"
    assert (await (await client.post("/identityv2/data", json=item, headers=bearer(token))).json())[
        "status"
    ] == 1
    unknown = await (
        await client.post(
            "/identityv2/data",
            json={**item, "handle": "88.123.45/T-2", "templateVersion": "nope"},
            headers=bearer(token),
        )
    ).json()
    assert unknown["status"] == -2 and "nope" in unknown["message"]

    update = {
        **TEMPLATE,
        "items": [{**TEMPLATE["items"][1], "state": 0}, {"name": "颜色", "idType": "color", "idIndex": 2002}],
    }
    updated = await (await client.put("/snms/api/v5/template", json=update, headers=bearer(token))).json()
    assert updated["status"] == 1 and [i["state"] for i in updated["data"]["items"]] == [1, 0, 1]
    refused = await (
        await client.post("/identityv2/data", json={**item, "handle": "88.123.45/T-3"}, headers=bearer(token))
    ).json()
    assert refused["status"] == -2 and "已停用" in refused["message"]
    changed = {**TEMPLATE, "items": [{**TEMPLATE["items"][0], "metadata": {"type": "number"}}]}
    assert (await (await client.put("/snms/api/v5/template", json=changed, headers=bearer(token))).json())[
        "status"
    ] == -2
    deleted = await (
        await client.request("DELETE", "/snms/api/v5/template", json=TEMPLATE, headers=bearer(token))
    ).json()
    assert deleted["status"] == -2 and "不能删除" in deleted["message"]
    # registrations without a template stay plain Handle records
    plain = {
        "handle": "88.123.45/PLAIN",
        "value": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x"}}],
    }
    assert (await (await client.post("/identityv2/data", json=plain, headers=bearer(token))).json())[
        "status"
    ] == 1


async def test_a_template_has_an_optional_display_name_in_chinese_and_english(client):
    """Issue 16: templateName / templateNameEn (the deployed IDIS template API documents no such
    field: /work/shared/reference/idis-node.md) are stored, listed and changed by PUT; the shared
    general template has its names from schema/0010_template_names.sql."""
    eid, _ = await admit(client, "88.123.46", 31)
    token = await user_token(client, eid, "tplname")
    named = {**TEMPLATE, "prefix": "88.123.46", "templateName": " 紧固件 ", "templateNameEn": "Fasteners"}
    created = await (await client.post("/snms/api/v5/template", json=named, headers=bearer(token))).json()
    assert created["status"] == 1, created
    assert created["data"]["templateName"] == "紧固件" and created["data"]["templateNameEn"] == "Fasteners"
    listed = await (
        await client.get("/snms/api/v5/template", params={"prefix": "88.123.46"}, headers=bearer(token))
    ).json()
    names = {t["version"]: (t.get("templateName"), t.get("templateNameEn")) for t in listed["data"]}
    assert names == {
        "bolt-1": ("紧固件", "Fasteners"),
        "general-product-1.0": ("通用产品", "General product"),
    }
    renamed = {**named, "items": named["items"][:1], "templateName": "螺栓类"}
    updated = await (await client.put("/snms/api/v5/template", json=renamed, headers=bearer(token))).json()
    assert updated["status"] == 1 and updated["data"]["templateName"] == "螺栓类", updated
    assert updated["data"]["templateNameEn"] == "Fasteners"  # not given: kept

    for field, bad in (("templateName", "名" * 300), ("templateNameEn", "Line\nbreak"), ("templateName", 7)):
        resp = await client.post(
            "/snms/api/v5/template",
            json={**named, "version": "bolt-2", field: bad},
            headers=bearer(token),
        )
        body = await resp.json()
        assert set(body) == {"status", "message", "data"} and body["status"] == -2, body
        assert field in body["message"] and "100 个字符" in body["message"], body
    listed = await (
        await client.get(
            "/snms/api/v5/template",
            params={"prefix": "88.123.46", "version": "bolt-2"},
            headers=bearer(token),
        )
    ).json()
    assert listed["data"] == []  # refused: nothing stored
