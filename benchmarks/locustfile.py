"""Locust scenarios for the identifier node (run against 127.0.0.1 only, always with a time limit).

SCENARIO (environment) picks what runs:
- resolution: traffic as the top-level node and scanning users produce it: Zipf-like popularity over
  the seeded identifiers (`88.123/S<n>`, n < BENCH_IDENTIFIERS), a share of unknown handles, the
  Handle API and the redirect face mixed;
- registration: enterprises registering one at a time and in batches of 2000, through the enterprise
  API and the Handle API;
- day: both, each held at BENCH_MULTIPLE times the policy's average rate (116 resolutions/s,
  0.95 registrations/s) by constant-throughput users (see benchmarks/profile.py for how many).
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import uuid

from locust import FastHttpUser, between, constant_throughput, task

from benchmarks.profile import day_profile_rates, day_profile_users

SCENARIO = os.environ.get("SCENARIO", "day")
IDENTIFIERS = int(os.environ.get("BENCH_IDENTIFIERS", "1000"))
UNKNOWN_SHARE = float(os.environ.get("BENCH_UNKNOWN_SHARE", "0.05"))
ADMIN = (
    "Basic "
    + base64.b64encode(
        f"300%3A0.NA/88.123:{os.environ.get('BENCH_ADMIN_SECRET', 'bench-admin-secret')}".encode()
    ).decode()
)
USER = os.environ.get("BENCH_USER", "bench")
PASSWORD = os.environ.get("BENCH_PASSWORD", "bench-password")
ENTERPRISE_PREFIX = os.environ.get("BENCH_PREFIX", "88.123.45")
_serial = itertools.count()
RESOLVER_RATE, REGISTRAR_RATE = day_profile_rates()


def popular_handle() -> str:
    """Zipf-like popularity: rank r with probability about 1/r (a log-uniform draw)."""
    rank = int(IDENTIFIERS ** random.random()) - 1
    return f"88.123/S{max(0, rank)}"


def product(handle: str) -> dict[str, object]:
    return {
        "handle": handle,
        "templateVersion": "general-product-1.0",
        "value": [
            {"index": 2000, "type": "productName", "data": {"format": "string", "value": "压测产品"}},
            {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": "压测企业"}},
        ],
    }


class Resolver(FastHttpUser):
    """Resolutions: Handle API and the redirect face, popular handles and a few unknown ones."""

    abstract = SCENARIO not in ("resolution", "day")
    wait_time = constant_throughput(RESOLVER_RATE) if SCENARIO == "day" else between(0, 0)

    @task(6)
    def handle_api(self) -> None:
        self.client.get(f"/api/handles/{popular_handle()}", name="/api/handles/{handle}")

    @task(3)
    def redirect_face(self) -> None:
        with self.client.get(
            f"/{popular_handle()}", name="/{handle}", allow_redirects=False, catch_response=True
        ) as r:
            if r.status_code in (200, 302):
                r.success()
            else:
                r.failure(f"status {r.status_code}")

    @task(1)
    def unknown(self) -> None:
        if random.random() < UNKNOWN_SHARE * 10:
            with self.client.get(
                f"/api/handles/88.123/UNKNOWN-{uuid.uuid4().hex[:8]}",
                name="/api/handles/{unknown}",
                catch_response=True,
            ) as r:
                if r.status_code == 404:
                    r.success()
                else:
                    r.failure(f"expected 404, got {r.status_code}")
        else:
            self.handle_api()


class Registrar(FastHttpUser):
    """Registrations: single and batches of 2000 through the enterprise API, single through Handle."""

    abstract = SCENARIO not in ("registration", "day")
    wait_time = constant_throughput(REGISTRAR_RATE) if SCENARIO == "day" else between(0, 0)

    def on_start(self) -> None:
        answer = self.client.post("/identity/token", json={"username": USER, "password": PASSWORD}).json()
        self.bearer = {"Authorization": f"Bearer {answer['data']['token']}"}
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def _handle(self) -> str:
        return f"{ENTERPRISE_PREFIX}/L-{self.tag}-{next(_serial)}"

    @task(5)
    def enterprise_single(self) -> None:
        with self.client.post(
            "/identityv2/data",
            json=product(self._handle()),
            headers=self.bearer,
            name="/identityv2/data",
            catch_response=True,
        ) as r:
            if r.status_code == 200 and r.json().get("status") == 1:
                r.success()
            else:
                r.failure(r.text[:200])

    @task(1)
    def enterprise_batch(self) -> None:
        items = [product(self._handle()) for _ in range(2000 if SCENARIO != "day" else 20)]
        with self.client.post(
            "/identityv2/data/batchCreate",
            json=items,
            headers=self.bearer,
            name="/identityv2/data/batchCreate",
            catch_response=True,
        ) as r:
            body = r.json() if r.status_code == 200 else {}
            if body.get("status") == 1 and all(i["code"] == 1 for i in body["data"]):
                r.success()
            else:
                r.failure(r.text[:200])

    @task(2)
    def handle_api(self) -> None:
        handle = f"88.123/H-{self.tag}-{next(_serial)}"
        value = [{"index": 1, "type": "URL", "data": f"https://example.com/{handle}"}]
        with self.client.put(
            f"/api/handles/{handle}?overwrite=false",
            json=value,
            name="/api/handles/{handle} PUT",
            headers={"Authorization": ADMIN},
            catch_response=True,
        ) as r:
            if r.status_code == 201:
                r.success()
            else:
                r.failure(f"status {r.status_code}: {r.text[:200]}")


if SCENARIO == "day":
    Resolver.weight, Registrar.weight = day_profile_users()
