"""Certified native answers from the real `resolver serve` (issue 17, items 2 and 3): a node given a
key by `resolver keys init` publishes it in its site record (GET_SITE_INFO, `resolver siteinfo`)
and signs the answer to every request with the certify flag, over UDP and TCP; the signature is
checked by the test client written from RFC 3652 (tests/handle_client.py `verify_certified`, not
the node's codec), a changed octet fails it, and after `resolver keys rotate --overlap 0` and
SIGHUP the new key signs and the site record names it.

Reference: hdllib AbstractMessage.signMessage / verifyMessage (what is signed: the envelope's
versions, session and request ids and the session counter, then header and body),
Util.getBytesFromPublicKey (the RSA_PUB_KEY octets); docs/trust-reference.md."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.exceptions import InvalidSignature

from tests.handle_client import (
    OP_FLAG_CERTIFY,
    OP_FLAG_PUBLIC_ONLY,
    over_tcp,
    over_udp,
    read_site,
    request_message,
    resolution_body,
    rsa_public_key,
    utf8,
    verify_certified,
)
from tests.helpers import admin_json
from tests.nodes import free_port, start_node

pytestmark = pytest.mark.e2e


def keys(key_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "keys", *args, "--key-dir", str(key_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def site_key(port: int) -> tuple[int, int]:
    (answer,) = over_tcp(port, request_message(2, utf8(""))[0])
    assert (answer.opcode, answer.rc) == (2, 1)
    return rsa_public_key(read_site(answer.body)["servers"][0]["key"])  # type: ignore[index]


def test_certified_answers_verify_with_the_published_key(fresh_database: str, tmp_path: Path):
    key_dir = tmp_path / "keys"
    keys(key_dir, "init")
    native = free_port()
    node = start_node(
        tmp_path, "--dsn", fresh_database, "--native-port", str(native), "--key-dir", str(key_dir)
    )
    try:
        put = requests.put(
            f"{node.url}/api/handles/88.123/SIGNED-1",
            json=[{"index": 1, "type": "URL", "data": "https://example.com/signed"}],
            headers=admin_json(),
            timeout=10,
        )
        assert put.status_code in (200, 201), put.text
        exponent, modulus = site_key(native)
        assert exponent == 65537 and modulus.bit_length() == 2048

        certify = OP_FLAG_PUBLIC_ONLY | OP_FLAG_CERTIFY
        for request_id in (11, 12):
            request, _ = request_message(
                1, resolution_body("88.123/SIGNED-1"), flags=certify, request_id=request_id
            )
            # over UDP a signed answer is more than 3x a bare request: the client is sent to TCP
            udp = over_udp(native, request)
            assert udp.rc == 2 and "TCP" in udp.message_text()
            for answer in (over_tcp(native, request)[0], over_tcp(native, request)[0]):
                assert (answer.opcode, answer.rc, answer.request_id) == (1, 1, request_id)
                handle, values = answer.handle_and_values()
                assert handle == "88.123/SIGNED-1" and values[0].data == b"https://example.com/signed"
                assert verify_certified(answer, exponent, modulus) == "SHA-256"
                # one octet of the values changed: the signature no longer holds
                answer.signed = answer.signed[:-1] + bytes([answer.signed[-1] ^ 1])
                with pytest.raises(InvalidSignature):
                    verify_certified(answer, exponent, modulus)

        # without the flag: no signature (the cached path stays as it was)
        plain = over_udp(native, request_message(1, resolution_body("88.123/SIGNED-1"))[0])
        assert plain.rc == 1 and plain.credential == b""
        # a missing handle is signed too (the client checks every certified answer)
        missing = over_tcp(native, request_message(1, resolution_body("88.123/NONE"), flags=certify)[0])[0]
        assert missing.rc == 100 and verify_certified(missing, exponent, modulus) == "SHA-256"

        # resolver siteinfo publishes the same key
        info = subprocess.run(
            [sys.executable, "-m", "resolver", "siteinfo", "--key-dir", str(key_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        published = json.loads(info.stdout)["servers"][0]["publicKey"]
        assert rsa_public_key(base64.b64decode(published["value"])) == (exponent, modulus)

        # rotation: a new key signing at once, loaded on SIGHUP
        keys(key_dir, "rotate", "--overlap", "0")
        node.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while site_key(native) == (exponent, modulus):
            assert time.monotonic() < deadline, node.log.read_text()
            time.sleep(0.2)
        new_exponent, new_modulus = site_key(native)
        request, _ = request_message(1, resolution_body("88.123/SIGNED-1"), flags=certify, request_id=13)
        answer = over_tcp(native, request)[0]
        assert verify_certified(answer, new_exponent, new_modulus) == "SHA-256"
        with pytest.raises(InvalidSignature):
            verify_certified(answer, exponent, modulus)  # the old key no longer signs
    finally:
        code = node.stop()
        assert code == 0, node.log.read_text()


def test_without_a_key_certified_requests_get_unsigned_answers(fresh_database: str, tmp_path: Path):
    native = free_port()
    node = start_node(
        tmp_path, "--dsn", fresh_database, "--native-port", str(native), "--key-dir", str(tmp_path / "none")
    )
    try:
        (site,) = over_tcp(native, request_message(2, utf8(""))[0])
        assert read_site(site.body)["servers"][0]["key"] == b""  # type: ignore[index]
        request, _ = request_message(
            1, resolution_body("0.NA/88.123"), flags=OP_FLAG_PUBLIC_ONLY | OP_FLAG_CERTIFY
        )
        answer = over_tcp(native, request)[0]
        assert answer.credential == b""  # hdllib then reports the answer is not certified
    finally:
        node.stop()


def test_signatures_are_bounded_per_address(fresh_database: str, tmp_path: Path):
    """Each signature costs some ten plain answers: over UDP (where the source can be spoofed) a
    certified request is sent to TCP unsigned, and over TCP an address gets
    --rate-certified-per-address signatures a second (burst 2 here), then SERVER_TOO_BUSY unsigned."""
    key_dir = tmp_path / "keys"
    keys(key_dir, "init")
    native = free_port()
    node = start_node(
        tmp_path,
        "--dsn", fresh_database,
        "--native-port", str(native),
        "--key-dir", str(key_dir),
        "--rate-certified-per-address", "0.01",
        "--rate-certified-per-address-burst", "2",
        "--workers", "1",  # the buckets are per worker (the rate is shared out, the burst is each one's)
    )  # fmt: skip
    try:
        exponent, modulus = site_key(native)
        certify = OP_FLAG_PUBLIC_ONLY | OP_FLAG_CERTIFY
        request, _ = request_message(1, resolution_body("0.NA/88.123"), flags=certify)
        udp = over_udp(native, request)
        assert udp.rc == 2 and "TCP" in udp.message_text() and udp.credential == b""
        answers = [over_tcp(native, request)[0] for _ in range(3)]
        assert [a.rc for a in answers[:2]] == [1, 1]
        assert all(verify_certified(a, exponent, modulus) == "SHA-256" for a in answers[:2])
        assert answers[2].rc == 3 and answers[2].credential == b""  # RC_SERVER_TOO_BUSY
        plain = over_tcp(native, request_message(1, resolution_body("0.NA/88.123"))[0])[0]
        assert plain.rc == 1  # plain answers are not held back by the signature limit
    finally:
        code = node.stop()
        assert code == 0, node.log.read_text()
