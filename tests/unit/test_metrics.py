"""Local tallies reach the exported metrics; labels carry route templates, never raw paths."""

from __future__ import annotations

from resolver.metrics import NodeMetrics


def samples(metrics: NodeMetrics) -> dict[str, float]:
    found = {}
    for line in metrics.exposition().decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def flush(metrics: NodeMetrics, **overrides: object) -> None:
    values = dict(
        cache_entries=3,
        cache_bytes=300,
        evictions=0,
        invalidations=0,
        listen_up=True,
        lookups=0,
        keys_fetched=0,
    )
    values.update(overrides)
    metrics.flush(**values)  # type: ignore[arg-type]


def test_requests_latency_and_outcomes():
    metrics = NodeMetrics()
    metrics.request("/api/handles/{handle}", "GET", 200, 0.0003)
    metrics.request("/api/handles/{handle}", "GET", 404, 0.002)
    metrics.outcomes["hit"] += 1
    metrics.outcomes["not_found"] += 1
    metrics.registered("enterprise", "batch", [True, True, False])
    metrics.batch_sizes.append(("batchCreate", 2000))
    flush(
        metrics,
        evictions=5,
        lookups=2,
        keys_fetched=7,
        lookup_seconds=[0.0004],
        invalidation_delays=[0.003],
        connections={"open": 4, "in_use": 1, "lookups_waiting": 0},
    )
    found = samples(metrics)
    assert found["resolver_db_lookup_duration_seconds_count"] == 1
    assert found['resolver_invalidation_delay_seconds_bucket{le="0.005"}'] == 1
    assert found['resolver_batch_items_bucket{le="2000.0",operation="batchCreate"}'] == 1
    assert found['resolver_db_connections{state="in_use"}'] == 1
    assert found['resolver_http_requests_total{method="GET",route="/api/handles/{handle}",status="2xx"}'] == 1
    assert found['resolver_http_requests_total{method="GET",route="/api/handles/{handle}",status="4xx"}'] == 1
    assert (
        found['resolver_http_request_duration_seconds_bucket{le="0.0005",route="/api/handles/{handle}"}'] == 1
    )
    assert (
        found['resolver_http_request_duration_seconds_bucket{le="0.0025",route="/api/handles/{handle}"}'] == 2
    )
    assert found['resolver_resolutions_total{outcome="hit"}'] == 1
    assert found['resolver_registrations_total{api="enterprise",mode="batch",outcome="ok"}'] == 2
    assert found["resolver_cache_evictions_total"] == 5
    assert found["resolver_cache_entries"] == 3
    # running totals are exported as their growth: a second flush adds only what is new
    flush(metrics, evictions=6, lookups=2, keys_fetched=7)
    assert samples(metrics)["resolver_cache_evictions_total"] == 6


def test_methods_clients_invent_share_one_label():
    metrics = NodeMetrics()
    for method in ("GET", "PROPFIND", "MKCOL", "X-ANYTHING", "RESOLVE"):
        metrics.request("/api/handles/{handle}", method, 405, 0.001)
    flush(metrics)
    methods = {
        name.partition('method="')[2].partition('"')[0]
        for name in samples(metrics)
        if name.startswith("resolver_http_requests_total{")
    }
    assert methods == {"GET", "RESOLVE", "OTHER"}
    assert (
        samples(metrics)[
            'resolver_http_requests_total{method="OTHER",route="/api/handles/{handle}",status="4xx"}'
        ]
        == 3
    )
