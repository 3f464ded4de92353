"""The Handle JSON API: create, resolve, replace, add, remove, delete, with their status codes."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import admin_json, basic, url_value, wait_until_trusted

H = "/api/handles/88.123/ABC-0001"


async def create(client, path=H, values=None, **params):
    values = values if values is not None else [url_value(1, "https://example.com/1")]
    return await client.put(path, json={"values": values}, headers=admin_json(), params=params)


async def test_create_with_overwrite_false_is_201_and_resolves(client):
    resp = await create(client, overwrite="false")
    assert resp.status == 201
    assert await resp.json() == {"responseCode": 1, "handle": "88.123/ABC-0001"}
    resp = await client.get(H)
    assert resp.status == 200
    body = await resp.json()
    assert body["responseCode"] == 1 and body["handle"] == "88.123/ABC-0001"
    (value,) = body["values"]
    assert value["index"] == 1 and value["type"] == "URL"
    assert value["data"] == {"format": "string", "value": "https://example.com/1"}
    assert value["ttl"] == 86400
    assert len(value["timestamp"]) == 20 and value["timestamp"].endswith("Z")
    assert "permissions" not in value and "references" not in value


async def test_put_defaults_to_overwrite_and_answers_200(client):
    resp = await create(client)
    assert resp.status == 200
    resp = await create(client, values=[url_value(1, "https://example.com/2")])
    assert resp.status == 200
    body = await (await client.get(H)).json()
    assert body["values"][0]["data"]["value"] == "https://example.com/2"


async def test_create_existing_without_overwrite_is_409_rc_101(client):
    assert (await create(client)).status == 200
    resp = await create(client, overwrite="false")
    assert resp.status == 409
    body = await resp.json()
    assert body["responseCode"] == 101 and body["handle"] == "88.123/ABC-0001" and body["message"]


async def test_unknown_handle_is_404_rc_100_and_echoes_handle_as_sent(client):
    resp = await client.get("/api/handles/88.123/Nope-X")
    assert resp.status == 404
    body = await resp.json()
    assert body["responseCode"] == 100 and body["handle"] == "88.123/Nope-X"


async def test_handles_match_case_insensitively_and_show_as_first_registered(client):
    await create(client, path="/api/handles/88.123/MixedCase")
    resp = await client.get("/api/handles/88.123/mixedcase")
    body = await resp.json()
    assert resp.status == 200 and body["handle"] == "88.123/mixedcase"
    resp = await create(client, path="/api/handles/88.123/MIXEDCASE", overwrite="false")
    assert resp.status == 409
    listing = await (await client.get("/api/handles", params={"prefix": "88.123"}, headers=basic())).json()
    assert "88.123/MixedCase" in listing["handles"]


@pytest.mark.parametrize("scheme", ["hdl:", "doi:", "info:hdl/", "urn:hdl:", "HDL:"])
async def test_resolver_schemes_are_stripped(client, scheme):
    await create(client)
    resp = await client.get(f"/api/handles/{scheme}88.123/ABC-0001")
    assert resp.status == 200
    assert (await resp.json())["values"][0]["index"] == 1


async def test_post_is_treated_as_get(client):
    await create(client)
    resp = await client.post(H)
    assert resp.status == 200 and (await resp.json())["values"][0]["type"] == "URL"


async def test_add_value_with_index_and_overwrite_false_is_201(client):
    await create(client)
    resp = await client.put(
        H,
        params=[("index", "2"), ("overwrite", "false")],
        json={"values": [{"index": 2, "type": "EMAIL", "data": "a@b.c"}]},
        headers=admin_json(),
    )
    assert resp.status == 201 and (await resp.json())["responseCode"] == 1
    values = (await (await client.get(H)).json())["values"]
    assert [v["index"] for v in values] == [1, 2]


async def test_add_existing_value_without_overwrite_is_409_rc_201(client):
    await create(client)
    resp = await client.put(
        H,
        params=[("index", "1"), ("overwrite", "false")],
        json=[url_value(1, "https://x")],
        headers=admin_json(),
    )
    assert resp.status == 409 and (await resp.json())["responseCode"] == 201


async def test_replace_chosen_value_keeps_the_others(client):
    await create(client, values=[url_value(1, "https://a"), {"index": 2, "type": "EMAIL", "data": "a@b.c"}])
    resp = await client.put(H, params={"index": "1"}, json=[url_value(1, "https://b")], headers=admin_json())
    assert resp.status == 200
    values = (await (await client.get(H)).json())["values"]
    assert [(v["index"], v["data"]["value"]) for v in values] == [(1, "https://b"), (2, "a@b.c")]


async def test_index_various_accepts_any_indexes(client):
    await create(client)
    resp = await client.put(
        H,
        params={"index": "various"},
        json=[{"index": 7, "type": "DESC", "data": "seven"}],
        headers=admin_json(),
    )
    assert resp.status == 200
    assert [v["index"] for v in (await (await client.get(H)).json())["values"]] == [1, 7]


async def test_query_indexes_must_equal_body_indexes(client):
    await create(client)
    resp = await client.put(H, params={"index": "3"}, json=[url_value(2, "https://b")], headers=admin_json())
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_values_on_missing_handle_is_404(client):
    resp = await client.put(H, params={"index": "1"}, json=[url_value(1, "https://b")], headers=admin_json())
    assert resp.status == 404 and (await resp.json())["responseCode"] == 100


async def test_remove_values(client):
    await create(client, values=[url_value(1, "https://a"), {"index": 2, "type": "EMAIL", "data": "a@b.c"}])
    resp = await client.delete(H, params={"index": "2"}, headers=basic())
    assert resp.status == 200 and (await resp.json()) == {
        "responseCode": 1,
        "handle": "88.123/ABC-0001",
    }
    assert [v["index"] for v in (await (await client.get(H)).json())["values"]] == [1]


async def test_remove_missing_values_is_400_rc_200(client):
    await create(client)
    resp = await client.delete(H, params={"index": "9"}, headers=basic())
    assert resp.status == 400 and (await resp.json())["responseCode"] == 200


async def test_delete_handle_then_404(client):
    await create(client)
    resp = await client.delete(H, headers=basic())
    assert resp.status == 200 and (await resp.json()) == {
        "responseCode": 1,
        "handle": "88.123/ABC-0001",
    }
    assert (await client.get(H)).status == 404
    resp = await client.delete(H, headers=basic())
    assert resp.status == 404 and (await resp.json())["responseCode"] == 100


async def test_mint_new_suffix(client):
    resp = await client.put(
        "/api/handles/88.123/",
        params={"mintNewSuffix": "true"},
        json=[url_value(1, "https://m")],
        headers=admin_json(),
    )
    assert resp.status == 201
    handle = (await resp.json())["handle"]
    assert handle.startswith("88.123/") and len(handle) > len("88.123/")
    assert (await client.get(f"/api/handles/{handle}")).status == 200


async def test_concurrent_creates_exactly_one_wins(client):
    results = await asyncio.gather(*(create(client, overwrite="false") for _ in range(8)))
    statuses = sorted(r.status for r in results)
    assert statuses == [201] + [409] * 7
    for resp in results:
        if resp.status == 409:
            assert (await resp.json())["responseCode"] == 101


async def test_wrong_method_is_405_rc_4(client):
    resp = await client.patch(H, json=[])
    assert resp.status == 405
    assert (await resp.json())["responseCode"] == 4


async def test_put_needs_json_content_type(client):
    resp = await client.put(H, data=b"[]", headers={**basic(), "Content-Type": "text/plain"})
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_bad_json_is_400_rc_4(client):
    resp = await client.put(H, data=b"{not json", headers=admin_json())
    assert resp.status == 400
    body = await resp.json()
    assert body["responseCode"] == 4 and body["handle"] == "88.123/ABC-0001"


async def test_body_handle_must_match_url(client):
    resp = await client.put(
        H,
        json={"handle": "88.123/OTHER", "values": [url_value(1, "https://a")]},
        headers=admin_json(),
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_single_value_object_and_bare_array_bodies(client):
    resp = await client.put(H, json=url_value(1, "https://single"), headers=admin_json())
    assert resp.status == 200
    resp = await client.put(
        "/api/handles/88.123/ARR", json=[url_value(1, "https://arr")], headers=admin_json()
    )
    assert resp.status == 200
    assert (await (await client.get("/api/handles/88.123/ARR")).json())["values"][0]["data"][
        "value"
    ] == "https://arr"


async def test_prefix_not_served_here_is_rc_301(client):
    resp = await client.get("/api/handles/20.500.1/x")
    assert resp.status == 400 and (await resp.json())["responseCode"] == 301
    resp = await client.put("/api/handles/88.1234/x", json=[url_value(1, "https://a")], headers=admin_json())
    assert resp.status == 400 and (await resp.json())["responseCode"] == 301


async def test_invalid_handle_is_rc_102(client):
    resp = await client.get("/api/handles/no%20slash%20here")
    assert resp.status == 400 and (await resp.json())["responseCode"] == 102
    # a bare prefix is its prefix handle (HandleServer.doResolution,
    # Util.convertSlashlessHandleToZeroNaHandle): 0.NA/no-slash-here is not this node's
    resp = await client.get("/api/handles/no-slash-here")
    assert resp.status == 400 and (await resp.json())["responseCode"] == 301


async def test_list_handles_with_paging_and_total_count_as_string(client):
    for i in range(5):
        await create(client, path=f"/api/handles/88.123/L{i}")
    resp = await client.get(
        "/api/handles", params={"prefix": "88.123", "page": "1", "pageSize": "2"}, headers=basic()
    )
    body = await resp.json()
    assert resp.status == 200
    assert body["totalCount"] == "5" and body["page"] == 1 and body["pageSize"] == 2
    assert body["handles"] == ["88.123/L2", "88.123/L3"]
    resp = await client.get("/api/handles", params={"prefix": "88.123", "pageSize": "0"}, headers=basic())
    body = await resp.json()
    assert body["totalCount"] == "5" and "handles" not in body


async def test_list_needs_authentication(client):
    resp = await client.get("/api/handles", params={"prefix": "88.123"})
    assert resp.status == 401 and (await resp.json())["responseCode"] == 402


async def test_prefixes_lists_homed_prefixes(client):
    resp = await client.get("/api/prefixes")
    assert resp.status == 200
    assert await resp.json() == {"responseCode": 1, "prefixes": ["88.123"]}


async def test_auth_true_reads_the_database(client):
    from resolver.http.keys import LOOKUP

    lookup = client.server.app[LOOKUP]
    await wait_until_trusted(client)
    heard = len(lookup.invalidation_delays)
    await create(client)
    # The create's own change notification reaches this worker's feed some time after the commit
    # and forgets the entry once more (harmless, a later read fills it again); wait for it, or a
    # busy machine delivers it between the two reads below.
    for _ in range(500):
        if len(lookup.invalidation_delays) > heard:
            break
        await asyncio.sleep(0.01)
    assert len(lookup.invalidation_delays) > heard, "the create's notification never arrived"
    await client.get(H)
    before = lookup.keys_fetched
    await client.get(H)
    assert lookup.keys_fetched == before  # served from the cache
    resp = await client.get(H, params={"auth": "true"})
    assert resp.status == 200 and lookup.keys_fetched == before + 1


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["status"] == "ready"
