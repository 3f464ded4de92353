"""Value formats, TTLs, filters, permissions and secrets."""

from __future__ import annotations

import pytest

from tests.helpers import admin_json, basic

H = "/api/handles/88.123/VAL-1"


async def put_values(client, values, path=H):
    resp = await client.put(path, json={"values": values}, headers=admin_json())
    return resp


async def stored(client, path=H, **params):
    return (await (await client.get(path, params=params)).json())["values"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("bare string", {"format": "string", "value": "bare string"}),
        ({"format": "string", "value": "s"}, {"format": "string", "value": "s"}),
        ({"format": "base64", "value": "aGVsbG8="}, {"format": "base64", "value": "aGVsbG8="}),
        ({"format": "hex", "value": "cafe00"}, {"format": "hex", "value": "cafe00"}),
        (
            {
                "format": "admin",
                "value": {"handle": "0.NA/88.123", "index": "200", "permissions": "011111110011"},
            },
            {
                "format": "admin",
                "value": {"handle": "0.NA/88.123", "index": 200, "permissions": "011111110011"},
            },
        ),
        (
            {"format": "vlist", "value": [{"handle": "0.NA/88.123", "index": 300}]},
            {"format": "vlist", "value": [{"handle": "0.NA/88.123", "index": 300}]},
        ),
        (
            {"format": "site", "value": {"servers": [{"address": "127.0.0.1"}]}},
            {"format": "site", "value": {"servers": [{"address": "127.0.0.1"}]}},
        ),
        (
            {"format": "custom-x", "value": [1, 2, {"a": None}]},
            {"format": "custom-x", "value": [1, 2, {"a": None}]},
        ),
    ],
)
async def test_value_formats_round_trip(client, data, expected):
    value_type = (
        "HS_ADMIN" if isinstance(expected["value"], dict) and "permissions" in expected["value"] else "T"
    )
    resp = await put_values(client, [{"index": 5, "type": value_type, "data": data}])
    assert resp.status == 200, await resp.text()
    (value,) = await stored(client)
    assert value["data"] == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"index": 1, "type": "T", "data": {"format": "base64", "value": "not base64!"}}, "base64"),
        ({"index": 1, "type": "T", "data": {"format": "hex", "value": "xyz"}}, "hex"),
        ({"index": 1, "type": "T", "data": {"format": "string", "value": 5}}, "string"),
        ({"index": 1, "type": "HS_ADMIN", "data": "x"}, "admin"),
        (
            {
                "index": 1,
                "type": "T",
                "data": {
                    "format": "admin",
                    "value": {"handle": "0.NA/1", "index": 1, "permissions": "2"},
                },
            },
            "permissions",
        ),
        ({"index": 0, "type": "T", "data": "x"}, "index"),
        ({"index": "abc", "type": "T", "data": "x"}, "index"),
        ({"index": 1, "type": "", "data": "x"}, "type"),
        ({"index": 1, "type": "T"}, "data"),
        # "11" was refused here before; the reference reads it from the right (1111), see
        # tests/integration/test_permission_strings.py
        ({"index": 1, "type": "T", "data": "x", "permissions": "11x1"}, "permissions"),
        ({"index": 1, "type": "T", "data": "x", "ttl": "yesterday-ish"}, "ttl"),
        ({"index": 1, "type": "T\u0007", "data": "x"}, "control"),
    ],
)
async def test_invalid_values_are_400_rc_202_naming_the_problem(client, value, fragment):
    resp = await put_values(client, [value])
    assert resp.status == 400
    body = await resp.json()
    assert body["responseCode"] == 202 and body["handle"] == "88.123/VAL-1"
    assert fragment in body["message"]


async def test_duplicate_indexes_are_refused(client):
    resp = await put_values(
        client, [{"index": 1, "type": "A", "data": "x"}, {"index": 1, "type": "B", "data": "y"}]
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 202


async def test_string_integers_are_accepted(client):
    resp = await put_values(client, [{"index": "7", "type": "T", "data": "x", "ttl": "3600"}])
    assert resp.status == 200
    (value,) = await stored(client)
    assert value["index"] == 7 and value["ttl"] == 3600


async def test_relative_and_absolute_ttls(client):
    resp = await put_values(
        client,
        [
            {"index": 1, "type": "A", "data": "x", "ttl": 60},
            {"index": 2, "type": "B", "data": "y", "ttl": "2030-01-02T03:04:05+08:00"},
        ],
    )
    assert resp.status == 200
    values = await stored(client)
    assert values[0]["ttl"] == 60
    assert values[1]["ttl"] == "2030-01-01T19:04:05Z"


async def test_index_and_type_filters_with_subtypes(client):
    await put_values(
        client,
        [
            {"index": 1, "type": "URL", "data": "https://a"},
            {"index": 2, "type": "URL.alt", "data": "https://b"},
            {"index": 3, "type": "EMAIL", "data": "c@d.e"},
            {"index": 4, "type": "DESC", "data": "d"},
        ],
    )
    assert [v["index"] for v in await stored(client, type="URL")] == [1]
    # a type ending in '.' matches the parent type too (Util.isParentTypeInArray)
    assert [v["index"] for v in await stored(client, type="url.")] == [1, 2]
    assert [v["index"] for v in await stored(client, type="URL.alt.")] == [2]
    resp = await client.get(H, params=[("type", "EMAIL"), ("index", "4")])
    assert [v["index"] for v in (await resp.json())["values"]] == [3, 4]
    resp = await client.get(H, params={"type": "NOPE"})
    assert resp.status == 200
    assert await resp.json() == {"responseCode": 200, "handle": "88.123/VAL-1", "values": []}


async def test_values_without_public_read_are_hidden_from_anonymous_readers(client):
    await put_values(
        client,
        [
            {"index": 1, "type": "URL", "data": "https://public"},
            {"index": 2, "type": "INTERNAL", "data": "private", "permissions": "1100"},
        ],
    )
    assert [v["index"] for v in await stored(client)] == [1]
    resp = await client.get(H, headers=basic())
    values = (await resp.json())["values"]
    assert [v["index"] for v in values] == [1, 2]
    assert values[1]["permissions"] == "1100"


async def test_secret_keys_are_hashed_and_never_shown_to_anonymous_readers(client):
    await put_values(client, [{"index": 300, "type": "HS_SECKEY", "data": "my-plain-secret"}])
    anonymous = await (await client.get(H)).text()
    assert "HS_SECKEY" not in anonymous and "my-plain-secret" not in anonymous
    admin_view = await (await client.get(H, headers=basic())).text()
    assert "HS_SECKEY" in admin_view and "my-plain-secret" not in admin_view
    node_prefix = await (await client.get("/api/handles/0.NA/88.123")).json()
    assert [v["type"] for v in node_prefix["values"]] == ["HS_ADMIN", "HS_VLIST"]


async def test_references_are_kept(client):
    refs = [{"handle": "88.123/OTHER", "index": 1}]
    await put_values(client, [{"index": 1, "type": "T", "data": "x", "references": refs}])
    (value,) = await stored(client)
    assert value["references"] == refs


async def test_timestamps_are_set_by_the_server(client):
    await put_values(client, [{"index": 1, "type": "T", "data": "x", "timestamp": "1999-01-01T00:00:00Z"}])
    (value,) = await stored(client)
    assert value["timestamp"] != "1999-01-01T00:00:00Z"
