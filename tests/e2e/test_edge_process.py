"""The real `resolver serve` with --log-format json and --access-log: every line the node writes
is one JSON object, the access line of a request names its X-Request-Id, and the id comes back on
the answer, including one the node made and one for a cross-origin preflight it refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import requests

from tests.nodes import start_node

pytestmark = pytest.mark.e2e


def test_json_logs_and_request_ids_through_the_real_process(fresh_database: str, tmp_path: Path) -> None:
    node = start_node(
        tmp_path,
        "--dsn",
        fresh_database,
        "--log-format",
        "json",
        "--access-log",
        "--cors-origins",
        "https://erp.example.com",
    )
    try:
        sent = requests.get(
            f"{node.url}/api/handles/88.123/none", headers={"X-Request-Id": "e2e-trace-1"}, timeout=10
        )
        assert sent.status_code == 404
        assert sent.headers["X-Request-Id"] == "e2e-trace-1"
        assert sent.headers["Access-Control-Allow-Origin"] == "*"
        made = requests.get(f"{node.url}/healthz", headers={"X-Request-Id": "no spaces please"}, timeout=10)
        made_id = made.headers["X-Request-Id"]
        assert made_id != "no spaces please"
        refused = requests.options(
            f"{node.url}/api/handles/88.123/none",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
            timeout=10,
        )
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
    finally:
        assert node.stop() == 0, node.log.read_text()
    lines = [line for line in node.log.read_text().splitlines() if line.strip()]
    entries = [orjson.loads(line) for line in lines]  # every line one JSON object
    assert all({"time", "level", "logger", "message", "pid"} <= entry.keys() for entry in entries)
    access = [e for e in entries if e["logger"] == "resolver.access"]
    traced = [e for e in access if e.get("request_id") == "e2e-trace-1"]
    assert len(traced) == 1 and "/api/handles/88.123/none" in traced[0]["message"]
    assert traced[0]["message"].endswith("e2e-trace-1")
    assert any(e.get("request_id") == made_id for e in access)
    assert any("worker" in e["message"] and "listening" in e["message"] for e in entries)
