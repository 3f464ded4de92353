"""The bodies of native admin requests as hdllib writes them (Encoder.encodeCreateHandleRequest,
encodeHandleValue, encodeAdminRecord, encodeRemoveValueRequest, encodeChallengeAnswer), read by
resolver/native/admin.py into the Handle API's value form; built with the RFC-written test client
(tests/handle_client.py), not the node's encoder."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from resolver.config import Limits
from resolver.core.values import parse_values
from resolver.native import admin
from resolver.native import protocol as p
from tests.handle_client import (
    admin_value_data,
    challenge_answer_body,
    u32,
    utf8,
    value_octets,
    values_body,
)


def request(opcode: int, body: bytes) -> p.Request:
    envelope = p.Envelope(2, 10, 0, (2, 10), 0, 1, 0, 24 + len(body))
    return p.Request(envelope, opcode, 0, 0, 0, 0, body, b"")


def test_a_create_request_reads_into_values_the_handle_api_stores():
    body = values_body(
        "88.123/X-1",
        [
            value_octets(1, "URL", b"https://example.com/x"),
            value_octets(2, "EMAIL", "质检@example.com".encode(), permissions=0xC),
            value_octets(3, "BLOB", b"\xff\x00\x01"),
            value_octets(100, "HS_ADMIN", admin_value_data("0.NA/88.123", 300, 0x0FF3)),
            value_octets(300, "HS_PUBKEY", b"RSA_PUB_KEY-octets"),
            value_octets(4, "DESC", b"see", references=[("88.123/X-2", 1)]),
        ],
    )
    parsed = admin.parse_admin(request(p.OC_CREATE_HANDLE, body))
    assert parsed.handle == "88.123/X-1"
    stored = {v["index"]: v for v in parse_values(parsed.values, Limits(), datetime.now(UTC))}
    assert stored[1]["data"] == {"format": "string", "value": "https://example.com/x"}
    assert stored[2]["permissions"] == "1100"  # admin read and write only: not public
    assert stored[3]["data"] == {"format": "base64", "value": "/wAB"}
    assert stored[100]["data"]["value"] == {
        "handle": "0.NA/88.123",
        "index": 300,
        "permissions": "111111110011",
    }
    assert stored[300]["data"]["format"] == "key"
    assert stored[4]["references"] == [{"handle": "88.123/X-2", "index": 1}]
    # and back: the node's encoder gives the octets hdllib sent (timestamps aside)
    for index, raw in (
        (1, value_octets(1, "URL", b"https://example.com/x")),
        (3, value_octets(3, "BLOB", b"\xff\x00\x01")),
    ):
        assert p.encode_value(stored[index])[8:] == raw[8:]


def test_remove_and_answer_bodies():
    removal = admin.parse_admin(request(p.OC_REMOVE_VALUE, utf8("88.123/X-1") + u32(2) + u32(1) + u32(7)))
    assert removal.indexes == [1, 7]
    answer = admin.parse_answer(challenge_answer_body("HS_SECKEY", "0.NA/88.123", 300, b"\x22mac"))
    assert (answer.auth_type, answer.handle, answer.index, answer.signed) == (
        "HS_SECKEY",
        "0.NA/88.123",
        300,
        b"\x22mac",
    )


@pytest.mark.parametrize(
    "body",
    [
        utf8("88.123/X") + u32(3),  # three values announced, none sent
        utf8("88.123/X") + u32(1) + b"\x00" * 10,  # a value cut inside its fixed part
        utf8("88.123/X") + u32(10_000),  # more values than a request may carry
        utf8("88.123/X") + u32(1) + value_octets(100, "HS_ADMIN", b"\x0f"),  # an admin record too short
        u32(2**31),  # a handle longer than the body
    ],
)
def test_a_broken_body_is_a_protocol_error(body):
    with pytest.raises(p.ProtocolError):
        admin.parse_admin(request(p.OC_CREATE_HANDLE, body))


def test_the_challenge_carries_the_request_digest_and_a_nonce():
    req = p.Request(p.Envelope(2, 10, 0, (2, 10), 0, 5, 0, 0), 100, 0, 0, 0, 0, b"body", b"header+body")
    message = admin.challenge_message(req, b"n" * 16)
    opcode, rc, flags = struct.unpack_from(">III", message)
    assert (opcode, rc) == (100, 402) and flags & p.FLAG_REQUEST_DIGEST
    assert message[24] == p.DIGEST_SHA256 and message[57:61] == u32(16) and message[61:77] == b"n" * 16
