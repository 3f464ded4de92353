"""A Handle API session authenticated on one worker acts on every other, and ends on all of them
at once (the real `resolver serve` with two workers; each request a new connection, so the
kernel spreads them). The reference keeps sessions in one servlet container's memory
(`SessionsServlet`); a node of several processes and instances keeps them in Postgres."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
import requests

from tests.helpers import ADMIN_SECRET, ADMIN_USER
from tests.nodes import start_node

pytestmark = pytest.mark.e2e


def _handle(**fields: str) -> dict[str, str]:
    return {"Authorization": "Handle " + ", ".join(f'{k}="{v}"' for k, v in fields.items())}


def test_a_session_authenticated_on_one_worker_is_known_to_all(tmp_path, fresh_database):
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database)
    try:
        opened = requests.post(f"{node.url}/api/sessions", timeout=10).json()
        session, nonce = opened["sessionId"], base64.b64decode(opened["nonce"])
        key = hashlib.sha1(ADMIN_SECRET.encode()).hexdigest().encode()
        cnonce = os.urandom(16)
        mac = hmac.new(key, nonce + cnonce, "sha256").digest()
        answer = _handle(
            sessionId=session,
            id=ADMIN_USER,
            type="HS_SECKEY",
            cnonce=base64.b64encode(cnonce).decode(),
            alg="HMAC-SHA256",
            signature=base64.b64encode(mac).decode(),
        )
        resp = requests.put(f"{node.url}/api/sessions/this", headers=answer, timeout=10)
        assert resp.status_code == 200 and resp.json()["id"] == ADMIN_USER, resp.text
        alone = _handle(sessionId=session)
        pids = set()
        for _ in range(20):
            resp = requests.get(f"{node.url}/status", headers=alone, timeout=10)
            assert resp.status_code == 200, resp.text
            pids.add(resp.json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "every request reached the same worker"
        assert requests.delete(f"{node.url}/api/sessions/this", headers=alone, timeout=10).status_code == 204
        for _ in range(6):
            resp = requests.get(f"{node.url}/status", headers=alone, timeout=10)
            assert resp.status_code == 401 and resp.json()["responseCode"] == 402, resp.text
    finally:
        assert node.stop() == 0
