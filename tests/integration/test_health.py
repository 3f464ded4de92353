"""/healthz tells anonymous clients only that the process lives; /status is the administrator's;
the Server header names no versions (and is the operator's to choose)."""

from __future__ import annotations

from dataclasses import replace

from resolver.http.keys import LOOKUP
from tests.enterprise_helpers import admit
from tests.helpers import basic, serving


async def test_healthz_is_minimal_and_status_is_for_the_node_administrator(client):
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "alive"}
    _, secret = await admit(client, "88.123.45", 70)
    for headers, status, rc in (
        ({}, 401, 402),  # the Handle API's errors: authentication needed
        (basic(password="wrong-secret"), 401, 402),  # authentication failed
        (basic("300:0.NA/88.123.45", secret), 403, 401),  # a tenant: not allowed
    ):
        resp = await client.get("/status", headers=headers)
        body = await resp.json()
        assert (resp.status, body["responseCode"]) == (status, rc) and set(body) == {
            "responseCode",
            "message",
        }
    resp = await client.get("/status", headers=basic())
    body = await resp.json()
    assert resp.status == 200 and isinstance(body["pid"], int)
    assert body["cache"]["trusted"] is True
    assert body["cache"]["lookups"] == client.server.app[LOOKUP].batches
    assert (await client.post("/status", headers=basic())).status == 405


async def test_the_server_header_is_neutral_and_configurable(client, config):
    await client.put(
        "/api/handles/88.123/SH-1",
        json=[{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://s"}}],
        headers=basic(),
    )
    paths = (
        "/healthz",
        "/api/handles/88.123/SH-1",
        "/api/handles/88.123/SH-1",
        "/api/handles/88.123/NO",
        "/88.123/SH-1?noredirect",
    )
    for path in paths:
        assert (await client.get(path)).headers["Server"] == "resolver", path
    async with serving(replace(config, server_header="idis-node")) as other:
        for path in paths:
            assert (await other.get(path)).headers["Server"] == "idis-node", path


async def test_head_is_answered_where_allow_says_it_is(client):
    """Load balancers probe with HEAD; the 405 of other methods names GET and HEAD, so both answer."""
    for path in ("/healthz", "/readyz", "/metrics"):
        resp = await client.head(path)
        assert resp.status == 200, path
        assert await resp.read() == b""
    resp = await client.post("/healthz")
    assert resp.status == 405 and resp.headers["Allow"] == "GET, HEAD"
