"""What recursion takes from outside (resolver/core/remote.py) and how it keeps it
(resolver/upstream/recursion.py: the byte-bounded cache, the shared lookups, the rendering)."""

from __future__ import annotations

import asyncio
import ipaddress

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.config import Limits
from resolver.core.errors import HandleError
from resolver.core.handles import parse_handle
from resolver.core.remote import (
    MAX_VALUE_DEPTH,
    AddressPolicy,
    InvalidAnswer,
    handle_path,
    parse_answer,
    record_ttl,
    site_of,
    values_ttl,
)
from resolver.http.bodies import MAX_JSON_DEPTH
from resolver.upstream.bounded import ENTRY_OVERHEAD, BoundedCache, SingleFlight
from resolver.upstream.recursion import render

LIMITS = Limits()
PUBLIC = AddressPolicy()


def site_record(*interfaces: dict[str, object], address: object = "1.2.3.4") -> dict[str, object]:
    server = {"serverId": 1, "address": address, "interfaces": list(interfaces)}
    site = {"format": "site", "value": {"servers": [server]}}
    return {"values": [{"index": 1, "type": "HS_SITE", "data": site, "ttl": 600}]}


def http(port: object = 8000, protocol: object = "HTTP", query: object = True) -> dict[str, object]:
    return {"query": query, "admin": False, "protocol": protocol, "port": port}


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1",
     "0.0.0.0", "255.255.255.255", "224.0.0.251", "239.255.255.250", "192.0.2.1", "::1", "::", "fe80::1",
     "fc00::1", "fd12:3456::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "2002:a00:1::1",
     "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2001:db8::1", "ff02::1",
     # seen permitted before: IPv4-compatible, SIIT-translated, local-use NAT64 (RFC 8215), site-local
     "::127.0.0.1", "::8.8.8.8", "::ffff:0:7f00:1", "::ffff:0:808:808", "64:ff9b:1::7f00:1",
     "64:ff9b:1::808:808", "fec0::1", "feff::1"],
)  # fmt: skip
def test_addresses_that_are_not_public_unicast_are_refused_by_default(address: str) -> None:
    assert not PUBLIC.permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_unicast_addresses_are_permitted(address: str) -> None:
    assert PUBLIC.permits(ipaddress.ip_address(address))


def test_allowed_networks_open_exactly_themselves() -> None:
    policy = AddressPolicy(["127.0.0.1/32", "10.20.0.0/16", "fd00::/8"])
    assert policy.permits(ipaddress.ip_address("127.0.0.1"))
    assert policy.permits(ipaddress.ip_address("::ffff:127.0.0.1"))  # the same address, mapped
    assert policy.permits(ipaddress.ip_address("10.20.255.1"))
    assert policy.permits(ipaddress.ip_address("fd00::5"))
    assert not policy.permits(ipaddress.ip_address("127.0.0.2"))
    assert not policy.permits(ipaddress.ip_address("10.21.0.1"))
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"))
    assert policy.permits(ipaddress.ip_address("8.8.8.8"))


def test_the_site_of_a_record_keeps_only_well_formed_http_query_interfaces() -> None:
    record = site_record(
        http(8000),
        http(443, "https"),
        http("abc"),
        http(None),
        http(70000),
        http(0),
        http(True),
        http(8001, "TCP"),
        http(8002, 7),
        http(8003, query=False),
        http(8004, query="yes"),
        "not an interface",
    )
    site = site_of(record, PUBLIC)
    assert [i.base for i in site.interfaces] == ["http://1.2.3.4:8000", "https://1.2.3.4:443"]
    assert site.unusable == 0


@pytest.mark.parametrize(
    "record",
    [None, [1, 2, 3], {"values": [1, "x"]}, {"values": "x"}, {"values": [{"type": "HS_SITE", "data": "x"}]},
     {"values": [{"type": "HS_SITE", "data": {"value": {"servers": [1, None, {"interfaces": "x"}]}}}]},
     {"values": [{"type": 7}]}, {}],
)  # fmt: skip
def test_a_malformed_record_has_no_site_and_raises_nothing(record: object) -> None:
    site = site_of(record, PUBLIC)
    assert site.interfaces == () and site.unusable == 0
    assert record_ttl(record) is None or isinstance(record_ttl(record), float)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "localhost", "example.com", "10.0.0.1", 7, None, "[::1]", "1.2.3.4.5", "x" * 100]
)
def test_interfaces_at_addresses_that_are_not_allowed_ips_are_unusable(address: object) -> None:
    site = site_of(site_record(http(8000), address=address), PUBLIC)
    assert site.interfaces == () and site.unusable == 1


def test_a_bracketed_ipv6_address_is_read() -> None:
    site = site_of(site_record(http(8000), address="[2606:4700::1111]"), PUBLIC)
    assert [i.base for i in site.interfaces] == ["http://[2606:4700::1111]:8000"]


@pytest.mark.parametrize(
    ("handle", "path"),
    [
        ("88.456.7/P-1", "/api/handles/88.456.7/P-1"),
        ("88.456.7/a b?c#d%e", "/api/handles/88.456.7/a%20b%3Fc%23d%25e"),
        ("88.456.7/a/b/c", "/api/handles/88.456.7/a/b/c"),
        ("88.456.7/零件/螺栓", "/api/handles/88.456.7/%E9%9B%B6%E4%BB%B6/%E8%9E%BA%E6%A0%93"),
        ("88.456.7/a\\b", "/api/handles/88.456.7/a%5Cb"),
        ("88.456.7/...", "/api/handles/88.456.7/..."),
        ("88.456.7/a..b/.c", "/api/handles/88.456.7/a..b/.c"),
    ],
)
def test_the_path_is_built_from_the_parsed_handle(handle: str, path: str) -> None:
    assert handle_path(parse_handle(handle, LIMITS)) == path


@pytest.mark.parametrize(
    "handle",
    ["99.1/..", "99.1/.", "99.1/../x", "99.1/a/../../b", "99.1/a/.", "99.1/..\\..\\x", "99.1/a\\.\\b"],
)
def test_dot_segments_are_refused(handle: str) -> None:
    with pytest.raises(HandleError) as refused:
        handle_path(parse_handle(handle, LIMITS))
    assert refused.value.rc == 102


@given(st.text(min_size=1, max_size=60).filter(lambda s: not s.isspace()))
def test_no_handle_makes_a_path_that_leaves_its_prefix(suffix: str) -> None:
    try:
        name = parse_handle(f"99.1/{suffix}", LIMITS)
        path = handle_path(name)
    except HandleError:
        return
    assert path.startswith("/api/handles/99.1/")
    assert not set(path) & set("?# \\\x00\r\n")
    segments = path.split("/")
    assert "." not in segments and ".." not in segments


def answer(body: object) -> bytes:
    return orjson.dumps(body)


GOOD_VALUE = {
    "index": 1,
    "type": "URL",
    "data": {"format": "string", "value": "https://example.com/"},
    "ttl": 60,
}
NAME = parse_handle("99.1/X", LIMITS)


def test_a_good_answer_gives_its_public_values_in_the_stored_form() -> None:
    values = [
        {**GOOD_VALUE, "timestamp": "2026-01-02T03:04:05Z", "extra": "<script>"},
        {"index": 2, "type": "EMAIL", "data": "a@example.com", "timestamp": "<b>not a time</b>"},
        {"index": 3, "type": "HS_SECKEY", "data": "secret"},  # not public: not passed on
        {"index": 4, "type": "DESC", "data": "x", "permissions": "1100"},
    ]
    parsed = parse_answer(
        200, answer({"responseCode": 1, "handle": "99.1/x", "values": values}), NAME, LIMITS
    )
    assert parsed == [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.com/"}, "ttl": 60,
         "timestamp": "2026-01-02T03:04:05Z"},
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "a@example.com"}, "ttl": 86400},
    ]  # fmt: skip
    assert values_ttl(parsed, 0.0) == 60.0
    assert parse_answer(404, answer({"responseCode": 100, "message": "<script>"}), NAME, LIMITS) is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"[1,2,3]"),
        (200, b'{"values":[1,"x"]}'),
        (200, b"<html><script>alert(1)</script></html>"),
        (200, b"\xff\xfe"),
        (200, b'{"responseCode":1,"values":{"index":1}}'),
        (200, b'{"responseCode":true,"values":[]}'),
        (200, b'{"responseCode":2,"values":[]}'),
        (200, b'{"responseCode":1,"handle":"99.1/Y","values":[]}'),
        (200, b'{"responseCode":1,"handle":7,"values":[]}'),
        (200, b'{"responseCode":1,"values":[{"index":"x","type":[],"data":{}}]}'),
        (200, b'{"responseCode":1,"values":[{"index":1,"type":"URL","data":{"format":"string","value":5}}]}'),
        (200, answer({"responseCode": 1, "values": [GOOD_VALUE, GOOD_VALUE]})),
        (200, answer({"responseCode": 1, "values": [{**GOOD_VALUE, "index": i} for i in range(1, 258)]})),
        (200, answer({"responseCode": 1, "values": [{**GOOD_VALUE, "data": "x" * 16385}]})),
        (200, b'{"responseCode":1,"values":[' + b"[" * 2000 + b"]" * 2000 + b"]}"),
        (404, b"<html>not here</html>"),
        (404, b'{"responseCode":1,"values":[]}'),
        (400, b'{"responseCode":102,"message":"bad"}'),
        (500, b'{"responseCode":2}'),
        (302, b""),
    ],
)
def test_anything_else_is_an_invalid_answer(status: int, body: bytes) -> None:
    with pytest.raises(InvalidAnswer) as invalid:
        parse_answer(status, body, NAME, LIMITS)
    assert "<" not in invalid.value.reason and "script" not in invalid.value.reason


def nested_value(levels: int) -> bytes:
    """An answer whose one value nests `levels` deep (the value object, its data, lists inside)."""
    inner = b"[" * (levels - 2) + b"0" + b"]" * (levels - 2)
    return (
        b'{"responseCode":1,"values":[{"index":1,"type":"X","data":{"format":"x","value":' + inner + b"}}]}"
    )


@pytest.mark.parametrize("levels", [MAX_VALUE_DEPTH + 1, 253, 256, 300, 1000])
def test_a_value_nested_too_deep_to_render_is_an_invalid_answer(levels: int) -> None:
    # seen before: past ~252 levels parse_value's orjson.dumps raised TypeError (a 500)
    with pytest.raises(InvalidAnswer) as invalid:
        parse_answer(200, nested_value(levels), NAME, LIMITS)
    assert invalid.value.reason == "answered values that are not valid Handle values"


def test_a_value_as_deep_as_allowed_renders_with_and_without_filters() -> None:
    assert MAX_VALUE_DEPTH + 2 < MAX_JSON_DEPTH  # room for {"values": [value]} within the local limit
    parsed = parse_answer(200, nested_value(MAX_VALUE_DEPTH), NAME, LIMITS)
    assert parsed is not None
    encoded = orjson.dumps(parsed)
    for indexes, types in ((frozenset(), ()), (frozenset({1}), ()), (frozenset(), ("x",))):
        assert orjson.loads(render("99.1/X", encoded, indexes, types))["values"][0]["index"] == 1


def test_the_rendered_answer_is_this_nodes_shape_with_filters_applied_here() -> None:
    values = [
        GOOD_VALUE,
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "a@b"}, "ttl": 5},
    ]
    encoded = orjson.dumps(values)
    assert orjson.loads(render("hdl:99.1/X", encoded, frozenset(), ())) == {
        "responseCode": 1,
        "handle": "hdl:99.1/X",
        "values": values,
    }
    assert orjson.loads(render("99.1/X", encoded, frozenset({2}), ()))["values"] == [values[1]]
    assert orjson.loads(render("99.1/X", encoded, frozenset(), ("url",)))["values"] == [GOOD_VALUE]
    assert orjson.loads(render("99.1/X", encoded, frozenset({9}), ())) == {
        "responseCode": 200,
        "handle": "99.1/X",
        "values": [],
    }


def test_the_cache_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    cache: BoundedCache[str] = BoundedCache(10 * (ENTRY_OVERHEAD + 1 + 100))
    for n in range(10):
        cache.put(str(n), f"v{n}", 60, 100, now=0)
    assert len(cache) == 10 and cache.bytes == cache.max_bytes
    assert cache.get("0", now=1) == ("v0",)  # used: now the most recent
    cache.put("a", "va", 60, 100, now=1)
    assert cache.get("1", now=1) is None and cache.get("0", now=1) == ("v0",)
    assert cache.bytes <= cache.max_bytes
    cache.put("big", "x", 60, cache.max_bytes, now=1)  # larger than the whole cache: not kept
    assert cache.get("big", now=1) is None and len(cache) == 10
    cache.put("none", None, 60, 0, now=1)  # type: ignore[arg-type]
    assert cache.get("none", now=1) == (None,)
    assert cache.get("none", now=61) is None  # expired, and dropped
    assert "none" not in cache._entries


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3000)), max_size=200))
def test_the_cache_never_holds_more_than_its_bytes(puts: list[tuple[int, int]]) -> None:
    cache: BoundedCache[int] = BoundedCache(20_000)
    for key, size in puts:
        cache.put(str(key), size, 60, size, now=0)
        assert cache.bytes <= cache.max_bytes
        assert cache.bytes == sum(entry[2] for entry in cache._entries.values())


async def test_concurrent_askers_share_one_lookup_which_outlives_a_cancelled_asker() -> None:
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def lookup() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    first = asyncio.ensure_future(flights.run("k", lookup))
    others = [asyncio.ensure_future(flights.run("k", lookup)) for _ in range(9)]
    await asyncio.sleep(0)
    first.cancel()  # the request that started it goes away
    release.set()
    assert await asyncio.gather(*others) == [42] * 9
    assert calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await flights.run("k", lookup) == 42 and calls == 2  # finished: a new lookup next time
    await flights.close()
