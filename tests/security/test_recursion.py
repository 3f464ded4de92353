"""Recursive resolution against a hostile outside world (issue 13 items 1-7, issue 14 in part).

The real `resolver serve --recursive` process, the top-level node simulator (with a counter of the
prefix records it is asked for, and a few poisoned answers) and a hostile site on 127.0.0.1: an
HTTP server answering redirects, huge and compressed bodies, HTML and bad JSON shapes, plus raw
TCP ports that send an SSH banner, that never answer, and that nobody listens on.

Seen before the fix: a 302 to the top-level node's /upstream/v1/state handed its state to the
anonymous client; `..` in the handle reached /api/upstream/v1/state on the target; four 300 MB
answers took a worker from ~90 MB to 1.02 GB; one request with a 32-component prefix made 32
top-level requests; an SSH port answered 502 with its banner and the internal URL; a port of "abc"
or an answer of [1,2,3] made 500s and failures were asked again every time; an HTML page came
back labelled application/json; 10 requests for a TTL-0 prefix record made 10 upstream fetches.

Run with `-s` to see what was measured (worker memory, top-level requests per recursive request).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
import pytest
from aiohttp import web

from tests.helpers import TEMPLATE, scratch_database
from tests.nodes import Node
from tests.security.hostile import (
    SECRET,
    World,
    get,
    good,
    gzip_bomb,
    handle_of,
    hs_site,
    huge,
    raw,
    redirect,
    start_recursive,
    stop_cleanly,
    values_of,
)

pytestmark = pytest.mark.e2e

MAX_BYTES = 262_144
TIMEOUT = 2.0
NODE_OPTIONS = (
    "--workers", "1",
    "--recursive",
    "--recursive-allow", "127.0.0.1/32",
    "--recursive-timeout", str(TIMEOUT),
    "--recursive-max-bytes", str(MAX_BYTES),
    # long lifetimes: what a test counts does not depend on how fast the machine is
    "--recursive-ttl-floor", "600",
    "--recursive-negative-ttl", "600",
)  # fmt: skip


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    running = World().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def node(template_ready: str, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        running = start_recursive(tmp_path_factory.mktemp("recursion"), dsn, world, *NODE_OPTIONS)
        try:
            yield running
        finally:
            stop_cleanly(running)


def get_json(node: Node, target: str) -> tuple[int, dict[str, Any]]:
    status, content_type, body = get(node, target)
    assert content_type.startswith("application/json"), (status, content_type, body[:300])
    document = orjson.loads(body)
    assert isinstance(document, dict) and isinstance(document.get("responseCode"), int), body[:300]
    return status, document


def assert_hop_failed(status: int, body: dict[str, Any], prefix: str) -> None:
    """The documented Handle error shape, 502, naming the hop."""
    assert status == 502, body
    assert body["responseCode"] == 2 and set(body) == {"responseCode", "handle", "message"}, body
    assert f"node for prefix {prefix}" in body["message"], body


def worker_rss(node: Node) -> int:
    """Resident memory of the node's one worker process, in bytes (from /proc)."""
    parent = node.process.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 1, workers
    for line in Path(f"/proc/{workers[0]}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- 1. redirects ----------------------------------------------------------------------------------


def test_a_redirect_is_a_failed_hop_never_followed(node: Node, world: World) -> None:
    cases = {
        "99.10": redirect(f"{world.toplevel_url}/upstream/v1/state"),
        "99.11": redirect(f"{node.url}/healthz"),
        "99.12": redirect(f"http://127.0.0.1:{world.site_port}/api/handles/99.12/NEXT"),  # a chain
        "99.13": redirect(f"http://user:pa:ss@127.0.0.1:{world.site_port}/"),  # ':' in the user part
        "99.14": redirect("/api/handles/99.14/SAME-SITE"),
    }
    for prefix, behaviour in cases.items():
        world.hostile(prefix, behaviour)
    reads_before = world.state_reads
    for prefix in cases:
        status, body = get_json(node, f"/api/handles/{prefix}/X")
        assert_hop_failed(status, body, prefix)
        assert "redirect" in body["message"]
        assert len(world.asked(prefix)) == 1, world.asked(prefix)  # asked once, nothing followed
    assert world.state_reads == reads_before


# -- 2. the path asked is built from the parsed handle ---------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/api/handles/99.20/../../upstream/v1/state",
        "/api/handles/99.20/..%2F..%2Fupstream%2Fv1%2Fstate",
        "/api/handles/99.20/%2E%2E/%2e%2e/upstream/v1/state",
        "/api/handles/99.20/A/../../../healthz",
        "/api/handles/99.20/..",
        "/api/handles/99.20/.",
        "/api/handles/99.20/..%5C..%5Cupstream",
    ],
)
def test_dot_segments_never_leave_the_handle_path(node: Node, world: World, target: str) -> None:
    world.hostile("99.20", good)
    seen_before = len(world.site_seen)
    status, content_type, body = get(node, target)
    assert SECRET.encode() not in body
    assert content_type.startswith("application/json")
    document = orjson.loads(body)
    assert status == 400 and document["responseCode"] == 102, document
    assert "'..'" in document["message"], document
    assert world.site_seen[seen_before:] == []  # not asked at all


def test_the_handle_is_percent_encoded_and_only_filters_apply_to_the_query(node: Node, world: World) -> None:
    world.hostile("99.21", good)
    suffix = "a b?c#d%e/ü;x=1&y"
    sent = f"/api/handles/99.21/{quote(suffix, safe='/')}"
    status, body = get_json(node, f"{sent}?type=URL&callback=alert&pretty=1&publicOnly=false")
    assert status == 200, body
    assert body["handle"] == f"99.21/{suffix}"
    assert [v["type"] for v in body["values"]] == ["URL"]  # the filter, applied by this node
    ((path, query),) = world.asked("99.21")
    assert unquote(path) == f"/api/handles/99.21/{suffix}"
    assert "?" not in path and "#" not in path and " " not in path
    assert query == ""  # nothing of the client's query is passed on
    # other query strings are the same cache entry: nothing more is asked
    for junk in ("", "?x=1", "?x=2", "?index=2", "?type=EMAIL&index=1", "?callback=f"):
        status, body = get_json(node, sent + junk)
        assert status == 200, body
    assert len(world.asked("99.21")) == 1
    status, body = get_json(node, f"{sent}?index=2")
    assert [v["index"] for v in body["values"]] == [2]
    status, body = get_json(node, f"{sent}?type=HS_ADMIN")
    assert status == 200 and body["responseCode"] == 200 and body["values"] == []
    status, body = get_json(node, f"{sent}?index=abc")
    assert status == 400 and body["responseCode"] == 4, body


# -- 3. bounded in bytes ---------------------------------------------------------------------------


def test_a_huge_answer_is_cut_short_and_the_worker_stays_small(node: Node, world: World) -> None:
    world.hostile("99.30", huge(world, announce_length=False))
    world.hostile("99.31", huge(world, announce_length=True))
    world.hostile("99.32", gzip_bomb(world))
    world.hostile("99.33", good)
    assert get_json(node, "/api/handles/99.33/WARM-UP")[0] == 200
    before = worker_rss(node)
    for handle in ("99.30/H-1", "99.31/H-2", "99.32/H-3", "99.30/H-4"):
        status, body = get_json(node, f"/api/handles/{handle}")
        assert_hop_failed(status, body, handle.partition("/")[0])
    after = worker_rss(node)
    print(
        f"\nworker RSS before {before / 2**20:.1f} MiB, after four hostile answers of 300 MB "
        f"{after / 2**20:.1f} MiB; bytes the hostile site got to send: {dict(world.sent)}"
    )
    assert after - before < 64 * 2**20
    for handle in ("99.30/H-1", "99.31/H-2", "99.30/H-4"):
        assert world.sent[handle] < 64 * 2**20, handle  # the node stopped reading early


def test_distinct_answers_are_held_within_the_cache_bytes(
    template_ready: str, world: World, tmp_path: Path
) -> None:
    value = "v" * 12_000

    async def sized(request: web.Request) -> web.StreamResponse:
        handle = handle_of(request)
        values = [
            {"index": i, "type": "DESC", "data": {"format": "string", "value": value}, "ttl": 86400}
            for i in (1, 2)
        ]
        return web.json_response({"responseCode": 1, "handle": handle, "values": values})

    world.hostile("99.40", sized)
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        small = start_recursive(tmp_path, dsn, world, *NODE_OPTIONS, "--recursive-cache-bytes", "1048576")
        try:
            for n in range(60):  # 60 answers of ~24 kB: ~1.5 MB, more than the 1 MiB allowed
                assert get_json(small, f"/api/handles/99.40/H-{n}")[0] == 200
            assert get_json(small, "/api/handles/99.40/H-59")[0] == 200
            assert len(world.asked("99.40")) == 60  # the newest is still cached
            assert get_json(small, "/api/handles/99.40/H-0")[0] == 200
            assert len(world.asked("99.40")) == 61  # the oldest was dropped for the bytes
            # unknown prefixes fill the prefix-site cache (a sixteenth: 64 KiB), which drops the oldest
            first = world.toplevel_asked["98.0"]
            for n in range(400):
                assert get_json(small, f"/api/handles/98.{n}/X")[0] == 404
            assert world.toplevel_asked["98.0"] == first + 1
            assert get_json(small, "/api/handles/98.0/Y")[0] == 404
            assert world.toplevel_asked["98.0"] == first + 2
        finally:
            stop_cleanly(small)


# -- 4. bounded fan-out, shared lookups ------------------------------------------------------------


def test_a_deep_prefix_asks_the_top_level_node_a_bounded_number_of_times(node: Node, world: World) -> None:
    asked = sum(world.toplevel_asked.values())
    deep = ".".join(["96"] + ["1"] * 31)  # 32 components, 64 characters: the longest prefix allowed
    status, body = get_json(node, f"/api/handles/{deep}/X")
    assert status == 404 and body["responseCode"] == 100, body
    assert sum(world.toplevel_asked.values()) - asked == 5  # --recursive-max-depth

    rng = random.Random(13)
    asked = sum(world.toplevel_asked.values())
    count = 200
    for _ in range(count):
        prefix = ".".join(["95", *rng.choices("0123456789abcdefghijklmnopqrstuvwxyz", k=26)])  # 27 components
        assert get_json(node, f"/api/handles/{prefix}/X")[0] == 404
    per_request = (sum(world.toplevel_asked.values()) - asked) / count
    print(f"\ntop-level requests per recursive request, random 27-component prefixes: {per_request:.2f}")
    assert per_request <= 5


def test_concurrent_requests_share_one_lookup_per_prefix(node: Node, world: World) -> None:
    world.hostile("99.50", good)
    world.toplevel_delay["99.50"] = 0.5  # the lookup is slow: the requests overlap it

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda n: get_json(node, f"/api/handles/99.50/C-{n % 10}"), range(20)))
    assert [status for status, _ in answers] == [200] * 20
    assert world.toplevel_asked["99.50"] == 1
    assert sorted(path for path, _ in world.asked("99.50")) == [
        f"/api/handles/99.50/C-{n}" for n in range(10)
    ]


def test_lifetimes_have_a_floor(node: Node, world: World) -> None:
    async def ttl_zero(request: web.Request) -> web.StreamResponse:
        handle = handle_of(request)
        return web.json_response({"responseCode": 1, "handle": handle, "values": values_of(handle, ttl=0)})

    world.behaviours["99.51"] = ttl_zero
    world.publish("99.51", hs_site(world.site_port, ttl=0))
    for n in range(10):
        assert get_json(node, f"/api/handles/99.51/T-{n}")[0] == 200
        assert get_json(node, "/api/handles/99.51/SAME")[0] == 200
    assert world.toplevel_asked["99.51"] == 1  # the TTL-0 prefix record: one fetch
    assert len([p for p, _ in world.asked("99.51") if p.endswith("/SAME")]) == 1  # the TTL-0 answer: one


# -- 5. errors do not help scanning ports ----------------------------------------------------------


def test_failures_look_alike_and_hide_what_answered(node: Node, world: World) -> None:
    ports = {"99.60": world.ssh_port, "99.61": world.silent_port, "99.62": world.refused_port}
    for prefix, port in ports.items():
        world.hostile(prefix, good, port)
    messages = set()
    for prefix, port in ports.items():
        status, _, raw_body = get(node, f"/api/handles/{prefix}/X")
        for leak in (b"SSH", b"OpenSSH", b"identification", b"127.0.0.1", str(port).encode(), b"http://"):
            assert leak not in raw_body, (prefix, raw_body)
        body = orjson.loads(raw_body)
        assert_hop_failed(status, body, prefix)
        messages.add(body["message"].replace(prefix, "P"))
    assert len(messages) == 1, messages  # refused, silent and SSH ports are told apart by nothing said
    assert world.tcp_seen["ssh"] == 1 and world.tcp_seen["silent"] == 1
    # a target that refused the connection is remembered: other handles there do not knock again
    # (a listener there now would see them); one that accepted is asked for each handle
    with socket.create_server(("127.0.0.1", world.refused_port)) as listener:
        listener.setblocking(False)
        for prefix in ports:
            assert get_json(node, f"/api/handles/{prefix}/Y")[0] == 502
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert world.tcp_seen["ssh"] == 2 and world.tcp_seen["silent"] == 2


DENIED = ["169.254.169.254", "10.0.0.1", "192.168.1.1", "100.64.0.1", "0.0.0.0", "127.0.0.2", "::1",
          "::ffff:127.0.0.2", "fe80::1", "fd00::1", "224.0.0.1", "localhost", "example.com",
          "::127.0.0.1", "::ffff:0:7f00:1", "64:ff9b:1::7f00:1", "fec0::1"]  # fmt: skip


@pytest.mark.parametrize("address", DENIED)
def test_sites_outside_the_allowed_networks_are_not_contacted(node: Node, world: World, address: str) -> None:
    prefix = f"94.{DENIED.index(address)}"
    world.behaviours[prefix] = good
    world.publish(prefix, hs_site(world.site_port, address=address))
    status, _, raw_body = get(node, f"/api/handles/{prefix}/X")
    assert address.encode() not in raw_body
    body = orjson.loads(raw_body)
    assert_hop_failed(status, body, prefix)
    assert "not allowed" in body["message"], body
    assert world.asked(prefix) == []


def test_loopback_is_refused_unless_allowed(template_ready: str, world: World, tmp_path: Path) -> None:
    world.hostile("99.79", good)
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        default = start_recursive(tmp_path, dsn, world, "--workers", "1", "--recursive")
        try:
            status, body = get_json(default, "/api/handles/99.79/X")
            assert_hop_failed(status, body, "99.79")
            assert "not allowed" in body["message"]
        finally:
            stop_cleanly(default)
    assert world.asked("99.79") == []


# -- 6. hostile records and answers are failed hops, and remembered --------------------------------


def test_hostile_prefix_records_and_answers_are_never_500(node: Node, world: World) -> None:
    world.publish("99.80", hs_site("abc"))
    world.publish("99.81", hs_site(None))
    world.publish("99.82", hs_site(70000))
    world.publish("99.83", {"index": 1, "type": "HS_SITE", "data": "not a site"}, {"index": 2, "type": 7})
    world.toplevel_answers["99.84"] = (200, b"[1,2,3]")
    world.toplevel_answers["99.85"] = (200, b'{"values":[1,"x"]}')
    world.toplevel_answers["99.86"] = (200, b"not json at all")
    world.toplevel_answers["99.87"] = (302, b"")
    world.toplevel_answers["99.98"] = (200, b'{"values":[' + b"1," * MAX_BYTES + b"1]}")  # too large
    answers = {
        "99.88": raw(200, b"[1,2,3]"),
        "99.89": raw(200, b'{"values":[1,"x"]}'),
        "99.90": raw(200, b'{"responseCode":1,"values":[{"index":"x","type":[],"data":{}}]}'),
        "99.91": raw(200, b'{"responseCode":1,"values":[{"index":1,"type":"URL","data":{"format":"string","value":5}}]}'),
        "99.92": raw(200, b'{"responseCode":1,"handle":"88.123/OTHER","values":[]}'),
        "99.93": raw(200, b'{"responseCode":1,"values":{"index":1}}'),
        "99.94": raw(200, b'{"responseCode":true,"values":[]}'),
        "99.95": raw(200, b"\xff\xfe{}"),
        "99.96": raw(500, b'{"responseCode":2,"message":"boom"}'),
        "99.97": raw(200, b'{"responseCode":1,"values":[' + b"[" * 5000 + b"]" * 5000 + b"]}"),
        # a value nested deeper than this node can write back: was a 500 text/plain
        "99.99": raw(200, b'{"responseCode":1,"values":[{"index":1,"type":"X","data":{"format":"x","value":'
                     + b"[" * 300 + b"]" * 300 + b"}}]}"),
    }  # fmt: skip
    for prefix, behaviour in answers.items():
        world.hostile(prefix, behaviour)
    expected = {
        **{p: (404, "has no site for prefix") for p in ("99.80", "99.81", "99.82", "99.83", "99.85")},
        **{p: (502, "the top-level node") for p in ("99.84", "99.86", "99.87", "99.98")},
        **{p: (502, f"node for prefix {p}") for p in answers},
    }
    for attempt in range(2):
        for prefix, (status_wanted, words) in expected.items():
            status, body = get_json(node, f"/api/handles/{prefix}/X")
            if prefix == "99.99":
                assert "not valid Handle values" in body["message"], body
            assert (status, body["responseCode"]) == (status_wanted, 100 if status_wanted == 404 else 2), body
            assert words in body["message"], body
            assert set(body) == {"responseCode", "handle", "message"}
        # the second time, nothing is asked again: failures are remembered like any answer
        assert {p: world.toplevel_asked[p] for p in expected} == dict.fromkeys(expected, 1), attempt
        assert {p: len(world.asked(p)) for p in answers} == dict.fromkeys(answers, 1), attempt


def test_a_value_too_deep_to_render_with_a_filter_is_a_failed_hop(node: Node, world: World) -> None:
    # seen before: 251 levels passed the check, then the ?type= answer could not be written (500)
    deep = b"[" * 249 + b"]" * 249
    world.hostile("99.105", raw(200, b'{"responseCode":1,"values":[{"index":1,"type":"X","data":{"format":"x","value":'
                                + deep + b"}}]}"))  # fmt: skip
    for target in ("/api/handles/99.105/X?type=X", "/api/handles/99.105/X", "/api/handles/99.105/X?index=1"):
        status, body = get_json(node, target)
        assert_hop_failed(status, body, "99.105")
        assert "not valid Handle values" in body["message"], body
    assert len(world.asked("99.105")) == 1  # cached as a failed hop


def test_a_slow_or_broken_answer_fails_that_handle_not_the_site(node: Node, world: World) -> None:
    # seen before: one slow or truncated answer made the whole site unreachable for the negative TTL
    async def uneven(request: web.Request) -> web.StreamResponse:
        suffix = handle_of(request).partition("/")[2]
        if suffix == "SLOW":
            await asyncio.sleep(TIMEOUT * 2)  # past the node's deadline, then gone
        if suffix == "CUT":
            response = web.StreamResponse(
                headers={"Content-Type": "application/json", "Content-Length": "4096"}
            )
            await response.prepare(request)
            await response.write(b'{"responseCode":1,"val')
            assert request.transport is not None
            request.transport.close()
            return response
        return await good(request)

    world.hostile("99.106", uneven)
    for suffix in ("SLOW", "CUT"):
        status, body = get_json(node, f"/api/handles/99.106/{suffix}")
        assert_hop_failed(status, body, "99.106")
        status, body = get_json(node, f"/api/handles/99.106/FINE-{suffix}")
        assert status == 200, body
        assert body["values"][0]["data"]["value"] == f"https://example.com/99.106/FINE-{suffix}"


def test_outgoing_requests_name_no_library_or_version(node: Node, world: World) -> None:
    # seen before: "User-Agent: Python/3.11 aiohttp/3.14.5" to the top-level node and every site
    world.hostile("99.107", good)
    assert get_json(node, "/api/handles/99.107/X")[0] == 200
    assert world.toplevel_asked["99.107"] == 1 and len(world.asked("99.107")) == 1
    assert set(world.user_agents) == {"resolver"}, world.user_agents  # the --server-header default


# -- 7. nothing of a remote body is passed through as is -------------------------------------------


def test_remote_bodies_are_checked_and_rendered_again(node: Node, world: World) -> None:
    script = b"<html><script>alert(document.cookie)</script></html>"
    world.hostile("99.100", raw(200, script, "text/html"))
    world.hostile("99.101", raw(404, script, "text/html"))
    world.hostile("99.102", raw(200, script))  # HTML that calls itself JSON
    world.hostile("99.103", raw(404, b'{"responseCode":100,"message":"<script>alert(1)</script>"}'))

    async def decorated(request: web.Request) -> web.StreamResponse:
        handle = handle_of(request)
        values = [{**v, "script": "<script>x</script>"} for v in values_of(handle)]
        body = {"responseCode": 1, "handle": handle, "values": values, "html": "<script>y</script>"}
        return web.json_response(body)

    world.hostile("99.104", decorated)
    for prefix in ("99.100", "99.101", "99.102"):
        status, content_type, body = get(node, f"/api/handles/{prefix}/X")
        assert b"<script" not in body and content_type.startswith("application/json")
        assert_hop_failed(status, orjson.loads(body), prefix)
    status, content_type, body = get(node, "/api/handles/99.103/X")
    assert b"<script" not in body and status == 404 and orjson.loads(body)["responseCode"] == 100
    status, content_type, body = get(node, "/api/handles/99.104/X")
    assert status == 200 and b"<script" not in body and content_type.startswith("application/json")
    document = orjson.loads(body)
    assert document["handle"] == "99.104/X"
    assert document["values"][0]["data"]["value"] == "https://example.com/99.104/X"
    assert document["values"][0]["timestamp"] == "2026-01-02T03:04:05Z"
    assert set(document) == {"responseCode", "handle", "values"}


# -- 8. a target that never answers cannot stall recursion for everyone ---------------------------


def test_a_silent_target_cannot_queue_lookups_without_bound(
    template_ready: str, world: World, tmp_path: Path
) -> None:
    """Seen before: 1,000 requests for random handles at a site that accepts and never answers
    queued without bound or deadline behind --recursive-concurrency; a good site then took 23 s.
    Now a lookup waits for a slot within its hop's deadline, and past a bound on waiting lookups a
    request is refused at once (503, rc 3), never remembered, so the good site answers after."""
    world.hostile("99.110", good, world.silent_port)
    world.hostile("99.111", good)
    options = ("--workers", "1", "--recursive", "--recursive-allow", "127.0.0.1/32",
               "--recursive-concurrency", "2", "--recursive-timeout", "5")  # fmt: skip
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        busy = start_recursive(tmp_path, dsn, world, *options)
        try:
            assert get_json(busy, "/api/handles/99.111/WARM")[0] == 200  # the site record is cached
            targets = [f"/api/handles/99.110/R{random.randrange(10**9)}" for _ in range(40)]
            with ThreadPoolExecutor(max_workers=40) as pool:
                answers = list(pool.map(lambda target: get_json(busy, target), targets))
            refused = [body for status, body in answers if status == 503]
            for status, body in answers:
                assert status in (502, 503), body
                assert set(body) == {"responseCode", "handle", "message"}, body
            assert refused, answers  # 40 at once, 2 slots and 8 places to wait: some are refused
            assert all(b["responseCode"] == 3 and "recursive resolution" in b["message"] for b in refused)
            assert any("lookups are waiting" in b["message"] for b in refused), refused
            status, body = get_json(busy, "/api/handles/99.111/AFTER")  # the refusal is not remembered
            assert status == 200, body
        finally:
            stop_cleanly(busy)
