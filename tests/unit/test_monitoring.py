"""deploy/: the alert rules and the dashboard use only metrics the node exports, their PromQL parses,
and the alert rules behave as their unit tests (deploy/prometheus/alerts_test.yml) say: a new node's
business pace never alerts, an old node's does as a warning, a stuck outbox does.

promtool is the Debian package prometheus; .ci/run installs it as root, so in CI these run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from resolver.metrics import NodeMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAME = re.compile(r"\b((?:resolver|process)_[a-z0-9_]+)")


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
        connections={"idle": 1},
    )
    names = set()
    for line in metrics.exposition().decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "resolver-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_queries() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def used_names() -> set[str]:
    used: set[str] = set()
    for query in (*dashboard_queries(), *rule_queries()):
        used |= set(NAME.findall(query))
    return used


def test_rules_and_dashboard_use_exported_metrics():
    used = used_names()
    assert {"resolver_upstream_outbox", "resolver_db_connections", "resolver_identifiers"} <= used
    assert "process_resident_memory_bytes" in used
    exported = exported_names()
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_every_dashboard_query_follows_the_instance_variable():
    dashboard = json.loads((DEPLOY / "grafana" / "resolver-dashboard.json").read_text())
    assert "instance" in {v["name"] for v in dashboard["templating"]["list"]}
    for query in dashboard_queries():
        for name in NAME.findall(query):
            # every metric selector in the query is narrowed to the chosen instances
            assert re.search(rf"\b{name}\{{instance=~\"\$instance\"", query), query


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed here (Debian package prometheus)")
    return found


def run(*args: str) -> None:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules_and_config():
    run("check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    run("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))


def test_alert_rules_behave_as_their_unit_tests_say():
    run("test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))


def test_dashboard_queries_parse(tmp_path: Path):
    # promtool parses the PromQL of recording rules: the dashboard's queries as rules, with the
    # Grafana variable replaced by what "All" sends
    rules = [
        {"record": f"dashboard:query_{n}", "expr": query.replace("$instance", ".*")}
        for n, query in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run("check", "rules", str(path))
