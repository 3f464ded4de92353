"""Native administration against the real `resolver serve` with two workers (issue 17 item 6):
each challenge answer goes over a new TCP connection, as hdllib's HandleResolver may send it, so
the kernel spreads challenge and answer over the workers; the pending request is kept in
Postgres, so the answer is taken wherever it lands. The client is tests/handle_client.py (written
from RFC 3652), not the node's codec. Reference: HandleServer.processRequest / createChallenge."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from tests.handle_client import (
    OC_CREATE_HANDLE,
    OC_DELETE_HANDLE,
    OC_RESPONSE_TO_CHALLENGE,
    challenge_answer_body,
    over_tcp,
    request_message,
    resolution_body,
    seckey_answer_octets,
    utf8,
    value_octets,
    values_body,
)
from tests.helpers import ADMIN_SECRET
from tests.nodes import free_port, start_node

pytestmark = pytest.mark.e2e


def administer(port: int, opcode: int, body: bytes, secret: str, request_id: int) -> int:
    request, _ = request_message(opcode, body, flags=0, request_id=request_id)
    (challenge,) = over_tcp(port, request)
    assert challenge.rc == 402, challenge.message_text()
    hashed = hashlib.sha1(secret.encode()).hexdigest().encode()
    signed = seckey_answer_octets(hashed, challenge.body[4:], challenge.digest or b"", os.urandom(16))
    answer, _ = request_message(
        OC_RESPONSE_TO_CHALLENGE,
        challenge_answer_body("HS_SECKEY", "0.NA/88.123", 300, signed),
        flags=0,
        request_id=request_id + 1,
        session_id=challenge.session_id,
    )
    (outcome,) = over_tcp(port, answer)
    return outcome.rc


def test_challenges_are_answered_on_any_worker(tmp_path, fresh_database):
    native = free_port()
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database, "--native-port", str(native))
    try:
        for n in range(8):
            handle = f"88.123/NATIVE-E2E-{n}"
            url = f"https://example.com/e2e/{n}".encode()
            rc = administer(
                native,
                OC_CREATE_HANDLE,
                values_body(handle, [value_octets(1, "URL", url)]),
                ADMIN_SECRET,
                10 * n,
            )
            assert rc == 1
            resp = requests.get(f"{node.url}/api/handles/{handle}", timeout=10)
            assert resp.status_code == 200 and resp.json()["values"][0]["data"]["value"] == url.decode()
            # both workers answer resolutions with the new handle (the change feed told the other one)
            for _ in range(4):
                (resolved,) = over_tcp(native, request_message(1, resolution_body(handle))[0])
                assert resolved.rc == 1
        assert administer(native, OC_DELETE_HANDLE, utf8("88.123/NATIVE-E2E-0"), ADMIN_SECRET, 200) == 1
        assert requests.get(f"{node.url}/api/handles/88.123/NATIVE-E2E-0", timeout=10).status_code == 404
        assert administer(native, OC_DELETE_HANDLE, utf8("88.123/NATIVE-E2E-1"), "wrong", 300) == 403
        # counted like the HTTP API's requests (the workers flush their counts every few seconds)
        wanted = 'resolver_http_requests_total{method="CHALLENGE_ANSWER",route="native:tcp",status="2xx"}'
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lines = requests.get(f"{node.url}/metrics", timeout=10).text.splitlines()
            counted = [line for line in lines if line.startswith(wanted)]
            if counted and float(counted[0].split()[-1]) == 9:
                break
            time.sleep(0.5)
        assert counted and float(counted[0].split()[-1]) == 9, counted
    finally:
        assert node.stop() == 0
