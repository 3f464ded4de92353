"""The HTTP fuzzer's recursive scenario: generated requests for handles of other nodes, against the
real `resolver serve --recursive` in a hostile world (tests/security/hostile.py).

Every prefix the fuzzer names leads somewhere hostile or odd: a site that redirects to the
top-level node's state, answers 300 MB, a gzip bomb, HTML, bad JSON shapes, another handle's
answer; an SSH port, a silent one, a closed one; an address outside the allowed networks; a record
with a port of "abc"; a top-level node answering [1,2,3]; or a good site that echoes the handle. The
handles, their encodings (dot segments, %2F, invalid escapes), the query strings, methods and hop
headers are drawn by Hypothesis. For every answer:

- no 5xx but 502/504 (a failed hop), no dropped connection, the Handle API error shape with the
  status its responseCode maps to, always labelled application/json and valid JSON;
- a 200 only for a prefix whose site is good, with the handle echoed as sent; nothing of a hostile
  body (its marker, a script, a banner, the top-level node's state) and no internal address;

and at the end: the hostile site was asked only paths under /api/handles/<its prefix>/ with no dot
segment and no query string, the top-level node's state was never read, the node is healthy and
its log has no traceback.

Bounded: `RESOLVER_FUZZ_RECURSION_REQUESTS` (default 3000) requests, and at most
`RESOLVER_FUZZ_RECURSION_SECONDS` (default 120) of sending; `RESOLVER_FUZZ_SEED` replays a run.
"""

from __future__ import annotations

import os
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from resolver.core.handles import fold
from tests.helpers import TEMPLATE, scratch_database
from tests.nodes import Node
from tests.security.fuzz_strategies import ENCODINGS, PATH_INJECTIONS, encode_segment, query_string, weighted
from tests.security.hostile import (
    SECRET,
    World,
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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REQUESTS = int(os.environ.get("RESOLVER_FUZZ_RECURSION_REQUESTS", "3000"))
SECONDS = float(os.environ.get("RESOLVER_FUZZ_RECURSION_SECONDS", "120"))
PER_EXAMPLE = 5
# The Handle.Net status of each responseCode, with the transport statuses the node documents on
# top (as in test_fuzz_http.py); rc 2 of a failed hop is 502, or 504 when the top-level node is slow.
HANDLE_STATUS = {
    1: {200},
    2: {500, 502, 504},
    3: {503, 429},
    4: {400, 405, 408, 413, 415},
    100: {404},
    102: {400},
    200: {200, 400},
    301: {400},
    402: {401},
    403: {403},
    404: {403},
}
GOOD = ("93.1", "93.2", "93.3")  # the prefixes whose site answers well
LEAKS = (
    SECRET.encode(),
    b"<script",
    b"SSH-",
    b"OpenSSH",
    b'"prefixes"',
    b"127.0.0.1",
    b"http://",
    b"10.0.0.1",
)


async def echo(request: web.Request) -> web.StreamResponse:
    """A good site: the handle asked, in its URL value (so the fuzzer sees what was asked)."""
    handle = handle_of(request)
    return web.json_response({"responseCode": 1, "handle": handle, "values": values_of(handle)})


async def echo_ttl_zero(request: web.Request) -> web.StreamResponse:
    handle = handle_of(request)
    return web.json_response({"responseCode": 1, "handle": handle, "values": values_of(handle, ttl=0)})


def furnish(world: World) -> list[str]:
    """Every hostile (and the good) prefix of the scenario; returns them all."""
    world.hostile("93.1", echo)
    world.hostile("93.2", echo_ttl_zero)
    world.behaviours["93.3"] = good
    world.publish("93.3", hs_site(world.site_port, ttl=0))
    world.hostile("93.4", redirect(f"{world.toplevel_url}/upstream/v1/state"))
    world.hostile("93.5", huge(world, announce_length=False))
    world.hostile("93.6", huge(world, announce_length=True))
    world.hostile("93.7", gzip_bomb(world))
    world.hostile("93.8", raw(200, b"<html><script>alert(1)</script></html>", "text/html"))
    world.hostile("93.9", raw(404, b"<html><script>alert(1)</script></html>", "text/html"))
    world.hostile("93.10", raw(200, b"[1,2,3]"))
    world.hostile("93.11", raw(200, b'{"values":[1,"x"]}'))
    world.hostile("93.12", raw(200, b'{"responseCode":1,"handle":"93.1/OTHER","values":[]}'))
    world.hostile("93.13", raw(404, b'{"responseCode":100,"message":"<script>x</script>"}'))
    world.hostile("93.14", good, world.ssh_port)
    world.hostile("93.15", good, world.silent_port)
    world.hostile("93.16", good, world.refused_port)
    world.behaviours["93.17"] = good
    world.publish("93.17", hs_site(world.site_port, address="10.0.0.1"))
    world.publish("93.18", hs_site("abc"))
    world.toplevel_answers["93.19"] = (200, b"[1,2,3]")
    world.toplevel_answers["93.20"] = (302, b"")
    return [f"93.{n}" for n in range(1, 21)]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    running = World().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fuzz_node(template_ready: str, world: World, tmp_path: Path) -> Iterator[Node]:
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        options = ("--workers", "2", "--recursive", "--recursive-allow", "127.0.0.1/32")
        running = start_recursive(tmp_path, dsn, world, *options, "--recursive-timeout", "1")
        try:
            yield running
        finally:
            stop_cleanly(running)


# -- what is sent ----------------------------------------------------------------------------------

_NOT_ON_THE_WIRE = re.compile(r"[^\x21-\x7e]")
MAX_TARGET = 4000
COMPONENT = st.text(st.sampled_from("0123456789abcxyz-_"), min_size=1, max_size=3)
SUFFIX = weighted(
    (8, st.text(st.sampled_from("ABCXYZabc0123456789-_.~:产品"), min_size=1, max_size=10)),
    (1, st.text(min_size=1, max_size=12)),
    (2, st.sampled_from(["..", ".", "../x", "./x", "x/..", "a/../../b", "..\\..\\x", "a/./b", "...", ".a"])),
    (1, st.sampled_from(["../../upstream/v1/state", "a%2F..%2F..", "x?y", "x#y", "a b", "%", "%2e%2e", "é"])),
)

PARAMETERS = {
    "type": st.sampled_from(["URL", "EMAIL", "url.", "HS_SITE", "", "x" * 200]),
    "index": st.sampled_from(["1", "2", "3", "0", "-1", "x", "9" * 30]),
    "auth": st.sampled_from(["true", "false", "x"]),
    "publicOnly": st.sampled_from(["true", "false"]),
    "callback": st.sampled_from(["alert", "<script>"]),
}
QUERIES = query_string(PARAMETERS)
CLEAN_QUERIES = query_string(PARAMETERS, clean=True)


def handle_names(prefixes: list[str]) -> st.SearchStrategy[str]:
    deep = st.lists(COMPONENT, min_size=2, max_size=30).map(lambda parts: "93." + ".".join(parts))
    prefix = weighted(
        (12, st.sampled_from(prefixes)),
        (2, deep),
        (1, st.sampled_from(["93", "93.999", "92.1", "0.NA", "88.123.7"])),
    )
    return st.builds(lambda p, s: f"{p}/{s}", prefix, SUFFIX)


@st.composite
def requests_of(draw: Any, prefixes: list[str]) -> tuple[str, str, dict[str, str]]:
    """(method, raw target, headers)."""
    handle = draw(handle_names(prefixes))
    encoded = encode_segment(handle, draw(ENCODINGS))
    if draw(st.integers(0, 9)) == 0:  # an invalid or surprising escape somewhere in it
        at = draw(st.integers(0, len(encoded)))
        encoded = encoded[:at] + draw(PATH_INJECTIONS) + encoded[at:]
    query = draw(weighted((3, CLEAN_QUERIES), (1, QUERIES)))
    headers: dict[str, str] = {}
    roll = draw(st.integers(0, 19))
    if roll == 0:
        headers["X-Resolver-Hop"] = "1"
    elif roll == 1:
        headers["Authorization"] = draw(st.sampled_from(["Basic eDp5", "Bearer x", "Handle x"]))
    method = draw(st.sampled_from(["GET"] * 8 + ["HEAD", "POST"]))
    target = "/api/handles/" + encoded + (f"?{query}" if query else "")
    # what the HTTP parser refuses before the node sees it (raw bytes above ASCII, lines over
    # 8190 bytes) is test_fuzz_http.py's: here every request reaches the Handle API
    target = _NOT_ON_THE_WIRE.sub(lambda m: quote(m.group(), safe=""), target)[:MAX_TARGET]
    return method, target, headers


# -- what must come back ---------------------------------------------------------------------------


def send(url: str, method: str, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own, the target's bytes as drawn (raw UTF-8 included);
    status, headers and body (raises OSError or ValueError when the answer is cut or malformed)."""
    parts = urlsplit(url)
    head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\nContent-Length: 0\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    received = bytearray()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30) as sock:
        sock.sendall(head.encode("utf-8", "surrogatepass") + b"\r\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (chunk := sock.recv(65536)):
            received += chunk
    header_block, separator, body = bytes(received).partition(b"\r\n\r\n")
    if not separator:
        raise ValueError(f"no complete answer: {bytes(received[:200])!r}")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        answer_headers[name.strip().lower()] = value.strip()
    if "content-length" in answer_headers and method != "HEAD":
        if len(body) != int(answer_headers["content-length"]):
            raise ValueError(f"a body of {len(body)} bytes, {answer_headers['content-length']} announced")
    elif answer_headers.get("transfer-encoding") == "chunked":
        raise ValueError("a chunked answer (the node sends whole ones)")
    return int(status_line.split()[1]), answer_headers, body


def judge(status: int, headers: dict[str, str], body: bytes, method: str, target: str) -> list[str]:
    """What is wrong with one answer (nothing, if all is well)."""
    problems = []
    if status >= 500 and status not in (502, 504) and not (status == 503 and "retry-after" in headers):
        problems.append(f"HTTP {status}")
    if not headers.get("content-type", "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('content-type')!r}")
    if method == "HEAD":
        return problems
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [*problems, "not JSON"]
    if not isinstance(document, dict) or type(document.get("responseCode")) is not int:
        return [*problems, "not a Handle answer"]
    said = orjson.dumps({k: v for k, v in document.items() if k != "handle"})  # not the echo
    # nor the echo inside the remote's values (its URLs repeat the handle asked for, whose suffix
    # the fuzzer may have drawn as "127.0.0.1")
    said = said.replace(str(document.get("handle", "")).encode(), b"")
    problems += [f"leaked {leak!r}" for leak in LEAKS if leak in said]
    rc = document["responseCode"]
    if status not in HANDLE_STATUS.get(rc, set()):
        problems.append(f"HTTP {status} for responseCode {rc}")
    if status >= 400 and (set(document) - {"responseCode", "handle", "message"} or "message" not in document):
        problems.append(f"error shape {sorted(document)}")
    if status == 200:
        sent = unquote(target.partition("?")[0][len("/api/handles/") :])
        prefix = sent.partition("/")[0]
        site = next((g for g in GOOD if prefix == g or prefix.startswith(g + ".")), None)
        if site is None:
            problems.append(f"200 for {prefix}, whose site is hostile")
        if document.get("handle") != sent:
            problems.append(f"the answer names {document.get('handle')!r}, not the handle sent")
        urls = [v["data"]["value"] for v in document.get("values", []) if v.get("type") == "URL"]
        # handles match case-insensitively (ASCII): 93.1/A may be the answer cached for 93.1/a
        if (
            site in ("93.1", "93.2")
            and urls
            and [fold(u) for u in urls] != [fold(f"https://example.com/{sent}")]
        ):
            problems.append(f"the site was asked another handle: {urls}")
    return problems


def test_fuzz_recursive_resolution(fuzz_node: Node, world: World) -> None:
    prefixes = furnish(world)
    fuzz_seed = int(os.environ.get("RESOLVER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\nrecursion fuzz seed {fuzz_seed} (replay: RESOLVER_FUZZ_SEED={fuzz_seed})")
    state_reads = world.state_reads
    findings: list[str] = []
    statuses: Counter[int] = Counter()
    reasons: Counter[tuple[int, str]] = Counter()
    started = time.monotonic()
    batch = st.lists(requests_of(prefixes), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE)

    @seed(fuzz_seed)
    @settings(
        max_examples=-(-REQUESTS // PER_EXAMPLE),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        drawn = data.draw(batch, label="requests")  # always drawn: the same data each time
        if time.monotonic() - started > SECONDS or len(findings) >= 20:
            return
        for method, target, headers in drawn:
            try:
                status, answer_headers, body = send(fuzz_node.url, method, target, headers)
            except (OSError, ValueError) as exc:
                findings.append(f"{method} {target}: dropped ({type(exc).__name__}: {exc})")
                continue
            statuses[status] += 1
            if status != 200 and method != "HEAD":
                reasons[(status, body.partition(b'"message":')[2][:70].decode("utf-8", "replace"))] += 1
            for problem in judge(status, answer_headers, body, method, target):
                findings.append(f"{method} {target} {headers}: {problem}: {body[:200]!r}")

    fuzz()
    sent = sum(statuses.values())
    elapsed = time.monotonic() - started
    print(
        f"recursion fuzz: {sent} requests in {elapsed:.1f} s; answers by status: {dict(sorted(statuses.items()))}"
    )
    for (status, message), count in reasons.most_common(12):
        print(f"{count:6d} {status} {message}")
    assert not findings, "\n".join(findings[:20])
    assert world.state_reads == state_reads
    for path, query in world.site_seen:
        prefix = path[len("/api/handles/") :].partition("/")[0] if path.startswith("/api/handles/") else ""
        segments = unquote(path).replace("\\", "/").split("/")
        known = any(prefix == p or prefix.startswith(p + ".") for p in prefixes)  # or a parent's site
        assert known and "." not in segments and ".." not in segments, path
        assert query == "", (path, query)
    # still healthy: a good handle resolves through recursion and locally
    status, _, body = send(fuzz_node.url, "GET", f"/api/handles/93.1/{quote('AFTER')}", {})
    assert status == 200 and b"https://example.com/93.1/AFTER" in body, body
    assert send(fuzz_node.url, "GET", "/readyz", {})[0] == 200
