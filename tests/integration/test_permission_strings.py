"""HS_ADMIN and value permission strings over the HTTP API, read as the reference reads them
(net/handle/hdllib/GsonUtility.java: AdminRecordGsonTypeAdapter.permsElementToArray,
HandleValueGsonTypeAdapter.deserializePermissions): short strings from the right, "*", and for
HS_ADMIN booleans, integer masks and lists; stored and shown in the canonical form."""

from __future__ import annotations

import pytest

from tests.helpers import admin_json, url_value
from tests.integration.test_permissions import ENTERPRISE, ENTERPRISE_USER, as_user, make_prefix


async def admin_permissions_of(client, handle: str) -> str:
    body = await (await client.get(f"/api/handles/{handle}", params={"type": "HS_ADMIN"})).json()
    return body["values"][0]["data"]["value"]["permissions"]


async def test_a_short_admin_string_grants_the_rights_the_reference_reads(client):
    """ "0111" is add-handle, delete-handle and add-prefix (bits 0-2,
    GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray): stored and shown as 000000000111,
    and exactly those rights are effective (stored as 011100000000 before, it granted read-value,
    add-admin and remove-admin instead, and creating a handle was refused)."""
    await make_prefix(client, ENTERPRISE, "ent-secret", perms="0111")
    assert await admin_permissions_of(client, ENTERPRISE) == "000000000111"
    mine = as_user(ENTERPRISE_USER, "ent-secret")
    path = "/api/handles/88.123.45/PERM-1"
    resp = await client.put(
        path, params={"overwrite": "false"}, json=[url_value(1, "https://a")], headers=mine
    )
    assert resp.status == 201, await resp.text()  # add-handle
    resp = await client.put(path, json=[url_value(1, "https://b")], headers=mine)
    assert resp.status == 403 and (await resp.json())["responseCode"] == 401  # no modify-value
    assert (await client.delete(path, headers=mine)).status == 200  # delete-handle


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("*", "111111111111"),
        (True, "111111111111"),
        (False, "000000000000"),
        (7, "000000000111"),
        (0xFF3, "111111110011"),
        ([True, True, False, True], "000000001011"),
        ("1", "000000000001"),
    ],
)
async def test_other_admin_forms_are_stored_canonical(client, sent, shown):
    """GsonUtility.AdminRecordGsonTypeAdapter.permsPrimitiveToArray / permsArrayToArray: "*" and
    true all, false none, an integer its bits, a list from add-handle on."""
    await make_prefix(client, ENTERPRISE, "ent-secret", perms=sent)
    assert await admin_permissions_of(client, ENTERPRISE) == shown


@pytest.mark.parametrize("sent", ["2", "0" * 13, 4096, -1, [True] * 13, ["1"], {"add": True}])
async def test_other_admin_permissions_are_400_rc_202(client, sent):
    value = {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {"format": "admin", "value": {"handle": ENTERPRISE, "index": 300, "permissions": sent}},
    }
    resp = await client.put(f"/api/handles/{ENTERPRISE}", json={"values": [value]}, headers=admin_json())
    assert resp.status == 400
    body = await resp.json()
    assert body["responseCode"] == 202 and "admin permissions" in body["message"]


@pytest.mark.parametrize(
    ("sent", "shown"), [("0", None), ("00", "1100"), ("*", "1111"), ("0110", "0110"), ("1", "1111")]
)
async def test_value_permissions_are_read_from_the_right(client, sent, shown):
    """GsonUtility.HandleValueGsonTypeAdapter.deserializePermissions: the last character is
    public-write; bits not given keep the default 1110 (not written out, as the reference's
    serializer leaves out usual permissions)."""
    path = "/api/handles/88.123/PERM-V"
    value = {**url_value(1, "https://a"), "permissions": sent}
    resp = await client.put(path, json={"values": [value]}, headers=admin_json())
    assert resp.status in (200, 201), await resp.text()
    stored = (await (await client.get(path, headers=admin_json())).json())["values"][0]
    assert stored.get("permissions") == shown


@pytest.mark.parametrize("sent", ["11111", "1112", 1110, True])
async def test_other_value_permissions_are_400_rc_202(client, sent):
    value = {**url_value(1, "https://a"), "permissions": sent}
    resp = await client.put("/api/handles/88.123/PERM-V", json={"values": [value]}, headers=admin_json())
    assert resp.status == 400
    body = await resp.json()
    assert body["responseCode"] == 202 and "permissions" in body["message"]
