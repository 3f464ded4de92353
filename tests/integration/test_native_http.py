"""The native Handle protocol over HTTP (resolver/http/native_http.py), framed as the reference frames
it: MistraR/handle `src/main/java/net/handle/hdllib/HandleResolver.java` `sendHttpOrHttpsRequest`
(POST /<handle percent-encoded>, Accept and Content-Type application/x-hdl-message, body = envelope +
message; the answer's body read as envelope + message whatever the status) and the server's
`net/handle/server/servletcontainer/servlets/NativeServlet.java` `Handler.handle` / `handleResponse`
(one leading newline ignored; a short envelope or message is an RC_PROTOCOL_ERROR message)."""

from __future__ import annotations

import struct
from urllib.parse import quote

import pytest

from tests.handle_client import read_answer, read_site, request_message, resolution_body
from tests.helpers import basic, serving

MIME = "application/x-hdl-message"
HEADERS = {"Content-Type": MIME, "Accept": MIME, "User-Agent": "CNRI-HCL 2.0"}
RC_SUCCESS, RC_PROTOCOL_ERROR, RC_HANDLE_NOT_FOUND = 1, 4, 100


@pytest.fixture
async def client(config):
    async with serving(config) as test_client:
        yield test_client


async def post(client, path: str, body: bytes, headers: dict[str, str] = HEADERS):
    """POST as hdllib does and read the answer as it does (HandleResolver.sendHttpOrHttpsRequest:
    20 octets of envelope, then its messageLength octets)."""
    resp = await client.post(path, data=body, headers=headers)
    raw = await resp.read()
    assert resp.status == 200 and resp.content_type == MIME, (resp.status, raw[:200])
    envelope = raw[:20]
    length = struct.unpack("!I", envelope[16:20])[0]
    assert len(raw) == 20 + length
    return read_answer(raw[20:], envelope)


async def test_resolution_over_http_answers_as_udp_and_tcp_do(client):
    """HandleResolver.sendRequestToInterface, SP_HDL_HTTP: a RESOLUTION POSTed to /<handle>; the
    answer has the request's id (the client refuses another: "Message came back with different ID")."""
    resp = await client.put(
        "/api/handles/88.123/H-1",
        json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/h/1"}]},
        headers=basic(),
    )
    assert resp.status in (200, 201), await resp.text()
    request, _ = request_message(1, resolution_body("88.123/H-1"), request_id=4242)
    answer = await post(client, "/" + quote("88.123/H-1", safe=""), request)
    assert (answer.opcode, answer.rc, answer.request_id) == (1, RC_SUCCESS, 4242)
    handle, values = answer.handle_and_values()
    assert handle == "88.123/H-1" and [(v.index, v.type, v.data) for v in values] == [
        (1, "URL", b"https://example.com/h/1")
    ]
    # one leading newline is ignored (NativeServlet.Handler.handle)
    answer = await post(client, "/88.123/H-1", b"\n" + request)
    assert answer.rc == RC_SUCCESS
    missing, _ = request_message(1, resolution_body("88.123/NOPE"))
    assert (await post(client, "/88.123/NOPE", missing)).rc == RC_HANDLE_NOT_FOUND


async def test_site_information_over_http_on_the_root(client):
    """GET_SITE_INFO has a blank handle: encodeHandleAsUri gives "/"; the answer is the site record."""
    request, _ = request_message(2, b"")
    answer = await post(client, "/", request)
    assert (answer.opcode, answer.rc) == (2, RC_SUCCESS)
    site = read_site(answer.body)
    assert site["primary"] and any(
        protocol == 2 for _kind, protocol, _port in site["servers"][0]["interfaces"]
    )
    # TCP and HTTP take administration and queries (Interface.ST_ADMIN_AND_QUERY = 3), UDP only
    # queries (ST_QUERY = 2): an admin request over UDP is told to use TCP
    kinds = {protocol: kind for kind, protocol, _port in site["servers"][0]["interfaces"]}
    assert kinds[2] == 3 and kinds.get(0, 2) == 2


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "Invalid message length"),
        (b"\n", "Invalid message length"),
        (b"\x02\x0a" + b"\0" * 10, "Invalid message length"),
        # an envelope announcing 100 octets, followed by 5
        (
            bytes([2, 10, 0, 0]) + struct.pack("!IIII", 0, 9, 0, 100) + b"12345",
            "Expecting 100 bytes, only received 5",
        ),
        (bytes([2, 10, 0, 0]) + struct.pack("!IIII", 0, 9, 0, 2**31) + b"x", "at most"),
        (b"\x02\x0a" + b"\xff" * 60, "at most"),
    ],
)
async def test_hostile_bodies_get_a_native_protocol_error(client, body, says):
    """NativeServlet.Handler.handle: a short envelope is RC_PROTOCOL_ERROR "Invalid message length",
    a short message "Expecting N bytes, only received M"; here also an oversize announcement."""
    answer = await post(client, "/88.123/x", body)
    assert answer.rc == RC_PROTOCOL_ERROR and says in answer.message_text()


async def test_a_garbled_message_and_an_oversize_body(client):
    """A message the decoder refuses is RC_PROTOCOL_ERROR (NativeServlet: Encoder.decodeMessage
    failing); a body larger than the largest request is refused without being kept."""
    request, _ = request_message(1, resolution_body("88.123/x"))
    garbled = request[:20] + b"\xff" * (len(request) - 20)
    assert (await post(client, "/88.123/x", garbled)).rc == RC_PROTOCOL_ERROR
    answer = await post(client, "/88.123/x", request + b"\0" * (70 * 1024))
    assert answer.rc == RC_PROTOCOL_ERROR and "at most" in answer.message_text()


async def test_other_posts_to_pages_are_refused_clearly_and_pages_still_served(client):
    """HDLProxy.doPost hands a POST to NativeServlet only for the native content type; other POSTs
    to a page path get a clear 415, and GET of the same paths is the web proxy's as before."""
    for headers in ({"Content-Type": "application/json"}, {}):
        resp = await client.post("/88.123/x", data=b"{}", headers=headers)
        assert resp.status == 415 and MIME in resp.headers["Accept-Post"]
    resp = await client.post("/", data=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 415
    assert (await client.get("/")).status == 200
    assert (await client.get("/88.123/nothing-here")).status == 404
    assert (await client.request("PATCH", "/88.123/x")).status == 405
