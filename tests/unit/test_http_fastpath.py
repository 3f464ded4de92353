"""The HTTP fast path's parsing and bytes (resolver/http/fastpath.py), without a server.

The answer it writes is the JSON API's resolution (reference: HandleJsonRestApiServlet.doGet in
src/main/java/net/handle/server/servletcontainer/servlets/HandleJsonRestApiServlet.java), byte
for byte what resolver.http.handles answers through aiohttp; the end-to-end comparison is
tests/integration/test_http_fast_path.py.
"""

from __future__ import annotations

import re

import pytest

from resolver.cache import Entry
from resolver.http import requestid
from resolver.http.encoded import EncodedResponse
from resolver.http.fastpath import (
    MAX_REQUEST,
    aiohttp_supported,
    handle_text,
    plain_request,
    response_bytes,
    simple_request,
)
from resolver.http.handles import _answer
from resolver.store.rows import Record

OK = b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: node\r\n\r\n"


def test_a_plain_request_gives_its_raw_handle() -> None:
    """The handle part of the path, still percent-encoded, as handles.sent_handle_text slices it."""
    assert simple_request(OK) == "88.123/A"
    assert simple_request(b"GET /api/handles/hdl:88.123/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n") == (
        "hdl:88.123/a%2Fb"
    )
    many = b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
    assert simple_request(many + b"Connection: Keep-Alive\r\n\r\n") == "88.123/A"


@pytest.mark.parametrize(
    "data",
    [
        OK + OK,  # pipelined
        OK[:-2],  # split: the rest comes later
        OK + b"G",
        b"HEAD /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\n\r\n",  # no Host
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nAuthorization: Basic eDp5\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nauthorization: Basic eDp5\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET /api/handles/88.123/A?index=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A? HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A#f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET  /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A  HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.1\x0023/A HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX: \xc3\xa9\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\nHost: x\n\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX: y\rZ\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_REQUEST + b"\r\n\r\n",
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 101 + b"\r\n",
        b"",
    ],
)
def test_anything_unusual_is_declined(data: bytes) -> None:
    """aiohttp answers these: the fast path takes only one plain, complete request."""
    assert simple_request(data) is None


def test_hostile_lines_are_declined_quickly() -> None:
    """No regular-expression blow-up on long runs of what a header value may hold."""
    data = (
        b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX:" + b" " * (MAX_REQUEST - 60) + b"\x01\r\n\r\n"
    )
    assert simple_request(data) is None


def test_the_handle_is_decoded_as_sent_handle_text_decodes_it() -> None:
    """Percent-decoded as UTF-8 (%2F a slash), strictly: malformed UTF-8 is aiohttp's to refuse."""
    assert handle_text("88.123/A") == "88.123/A"
    assert handle_text("88.123/caf%C3%A9%2Fx") == "88.123/café/x"
    assert handle_text("88.123/%zz") == "88.123/%zz"
    assert handle_text("88.123/%C3%28") is None
    assert handle_text("88.123/%ED%A0%80") is None  # an encoded surrogate


@pytest.mark.parametrize("sent", ["88.123/A", "hdl:88.123/Ab", "88.123/café/日本", 'x/"\\'])
def test_the_bytes_are_those_of_the_encoded_response(sent: str) -> None:
    """Status line, Content-Length, Content-Type, Server, Date, the request's id and the CORS
    headers of an anonymous read (resolver/http/edge.py), then the body of handles._answer."""
    record = Record(
        handle="88.123/A",
        values=[{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://e"}}],
    )
    entry = Entry(record, expires=1e18)
    answer = _answer(sent, entry)
    assert isinstance(answer, EncodedResponse)
    data = response_bytes(sent, entry, b"req-1")
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == answer.body
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1] == b"Content-Length: %d" % len(body)
    assert lines[2] == b"Content-Type: application/json"
    assert lines[3].startswith(b"Server: ")
    assert re.fullmatch(rb"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", lines[4])
    assert lines[5] == b"X-Request-Id: req-1"
    assert lines[6] == b"Access-Control-Allow-Origin: *"
    assert lines[7].startswith(b"Access-Control-Expose-Headers: ") and b"X-Request-Id" in lines[7]
    assert len(lines) == 8


def test_the_installed_aiohttp_has_what_the_fast_path_reads() -> None:
    """The fast path reads aiohttp's RequestHandler internals; an aiohttp that renamed one would
    silently turn the fast path off (FastPath.of): this test makes an upgrade say so instead."""
    assert aiohttp_supported()


@pytest.mark.parametrize(
    "value",
    [
        b"abc-123",
        b"  padded\t",
        b"x" * 128,
        b"x" * 129,
        b"with space",
        b"tab\there",
        b"",
        b"   ",
        b"!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    ],
)
def test_the_request_id_is_kept_or_replaced_as_requestid_sane_decides(value: bytes) -> None:
    """The fast path keeps a client's X-Request-Id exactly when resolver/http/requestid.sane keeps
    the value aiohttp hands the middleware (the header stripped of blanks)."""
    data = b"GET /api/handles/88.123/A HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + value + b"\r\n\r\n"
    plain = plain_request(data)
    assert plain is not None
    kept = requestid.sane(value.decode().strip(" \t"))
    assert plain[1] == (kept.encode() if kept is not None else None)


def test_made_request_ids_are_unique_and_sane() -> None:
    """A made id is the process prefix and a counter, the same counter in text and in bytes."""
    made = {requestid.new_id() for _ in range(1000)} | {
        requestid.new_id_bytes().decode() for _ in range(1000)
    }
    assert len(made) == 2000
    assert all(requestid.sane(rid) == rid for rid in made)
    assert requestid.of("client-7") == "client-7"
    assert requestid.of("bad id") != "bad id"
    assert requestid.of(None) not in made
