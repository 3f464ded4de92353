"""deploy/: the alert rules and the dashboard use only metrics the node exports, and promtool accepts
the rules where it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from resolver.metrics import NodeMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\b(resolver_[a-z0-9_]+)")


def exported_names() -> set[str]:
    metrics = NodeMetrics()
    metrics.request("/r", "GET", 200, 0.001)
    metrics.registered("handle", "single", [True])
    metrics.outcomes["hit"] += 1
    metrics.set_standing({"resolutionsRatio": 0.5})
    metrics.set_outbox(1, 2, 3.0)
    metrics.flush(
        cache_entries=0,
        cache_bytes=0,
        evictions=0,
        invalidations=0,
        listen_up=True,
        lookups=0,
        keys_fetched=0,
    )
    names = set()
    for line in metrics.exposition().decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_rules_and_dashboard_use_exported_metrics():
    exported = exported_names()
    used = set(NAME.findall((DEPLOY / "prometheus" / "alerts.yml").read_text()))
    dashboard = json.loads((DEPLOY / "grafana" / "resolver-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(NAME.findall(target["expr"]))
    assert used, "no metric is used at all"
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_promtool_accepts_the_rules_and_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed here (Debian package prometheus)")
    for args in (
        ["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
