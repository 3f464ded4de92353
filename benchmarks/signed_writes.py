"""What trusted resolution costs: a write into a signed enterprise prefix (the node signs an
HS_SIGNATURE with its RSA-2048 key on every write) against the same write into an unsigned prefix,
on one node of 2 workers over an embedded Postgres; then what verifying one record costs a client
(the verifier of the test suite, tests/trust_client.py, reading over native TCP), and resolution of
signed records against unsigned ones (the signature is stored: a cached resolution signs nothing).

Each round creates --per-round distinct handles one at a time in each prefix through the Handle
HTTP API, and a batch of --batch items through the enterprise API's batchCreate, alternating the
order round by round (A/B interleaved: this VM's speed swings between runs). Reported: median and
p99 client latency per create, node CPU per create (utime + stime of the node's processes from
/proc; Postgres not counted), and per batch item. Only 127.0.0.1 is targeted; every loop is bounded.

Usage: python benchmarks/signed_writes.py [--rounds 4] [--per-round 150] [--batch 500] [--key rsa|sm2]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from benchmarks.cpu_per_request import cpu_seconds, descendants
from benchmarks.harness import SECRET, embedded_database, free_port, start_node, stop
from tests import trust_client
from tests.enterprise_helpers import credit_code, product

PRODUCT = [
    {"index": 1, "type": "URL", "data": "https://example.com/p"},
    {"index": 2000, "type": "productName", "data": "螺栓 M8"},
]


def ok(response: requests.Response) -> dict:
    body = response.json()
    assert body.get("status") == 1, body
    return body["data"]


def enterprise(session: requests.Session, url: str, prefix: str, seed: int) -> str:
    """Allocate and enable `prefix`; a bearer token of a user of its enterprise."""
    made = ok(
        session.post(
            f"{url}/admin/enterprises",
            json={
                "name": f"企业{seed}",
                "creditCode": credit_code(seed),
                "contact": {"name": "王五", "phone": "13700000000"},
            },
            timeout=10,
        )
    )
    ok(session.post(f"{url}/admin/enterprises/{made['id']}/prefixes", json={"prefix": prefix}, timeout=10))
    for state in (5, 1):
        ok(session.put(f"{url}/admin/prefixes/{prefix}/state", json={"state": state}, timeout=10))
    ok(
        session.post(
            f"{url}/admin/enterprises/{made['id']}/users",
            json={"username": f"u{seed}", "password": "benchmark-pass-1"},
            timeout=10,
        )
    )
    token = requests.post(
        f"{url}/identity/token", json={"username": f"u{seed}", "password": "benchmark-pass-1"}, timeout=10
    )
    return ok(token)["token"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=150)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--key", choices=["rsa", "sm2"], default="rsa", help="the key type that signs records"
    )
    args = parser.parse_args()
    with embedded_database("signed-writes-") as (workdir, dsn):
        key_dir = workdir / "keys"
        for algorithm in sorted({"rsa", args.key}):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "resolver",
                    "keys",
                    "init",
                    "--algorithm",
                    algorithm,
                    "--key-dir",
                    str(key_dir),
                ],
                check=True,
                cwd=ROOT,
                capture_output=True,
            )
        native = free_port()
        process, url = start_node(
            workdir,
            "--dsn",
            dsn,
            "--key-dir",
            str(key_dir),
            "--native-port",
            str(native),
            "--rate-per-address",
            "0",
            "--rate-per-credential",
            "0",
            "--record-key",
            args.key,
        )
        try:
            session = requests.Session()
            user = quote("300:0.NA/88.123", safe="")
            session.headers["Authorization"] = (
                "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()
            )
            tokens = {
                "signed": enterprise(session, url, "88.123.1", 1),
                "unsigned": enterprise(session, url, "88.123.2", 2),
            }
            ok(session.put(f"{url}/admin/prefixes/88.123.1/signing", json={"signed": True}, timeout=30))
            prefixes = {"signed": "88.123.1", "unsigned": "88.123.2"}
            pids = [str(process.pid), *descendants(process.pid)]
            latency: dict[str, list[float]] = {"signed": [], "unsigned": []}
            cpu = {"signed": 0.0, "unsigned": 0.0}
            batch_cpu = {"signed": 0.0, "unsigned": 0.0}
            batch_items = {"signed": 0, "unsigned": 0}
            n = 0
            for round_number in range(args.rounds):
                faces = ("signed", "unsigned") if round_number % 2 == 0 else ("unsigned", "signed")
                for face in faces:
                    before = cpu_seconds(pids)
                    for _ in range(args.per_round):
                        n += 1
                        started = time.perf_counter()
                        resp = session.put(
                            f"{url}/api/handles/{prefixes[face]}/H-{n}", json=PRODUCT, timeout=10
                        )
                        latency[face].append(time.perf_counter() - started)
                        assert resp.status_code in (200, 201), resp.text
                    cpu[face] += cpu_seconds(pids) - before
                    items = [
                        product(f"{prefixes[face]}/B-{round_number}-{k}", name=f"螺栓 {k}")
                        for k in range(args.batch)
                    ]
                    before = cpu_seconds(pids)
                    body = requests.post(
                        f"{url}/identityv2/data/batchCreate",
                        json=items,
                        headers={"Authorization": f"Bearer {tokens[face]}"},
                        timeout=120,
                    ).json()
                    batch_cpu[face] += cpu_seconds(pids) - before
                    assert body["status"] == 1, body
                    batch_items[face] += args.batch
            for face in ("signed", "unsigned"):
                samples = sorted(latency[face])
                p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
                print(
                    f"{face:8}  {len(samples)} creates  median {statistics.median(samples) * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  "
                    f"node CPU {cpu[face] / len(samples) * 1e6:,.0f} µs per create; batchCreate "
                    f"{batch_cpu[face] / batch_items[face] * 1e6:,.0f} µs per item"
                )
            records = trust_client.native_records(native)
            roots = trust_client.node_roots(records, "88.123")
            started, checked = time.perf_counter(), 0
            for k in range(1, min(n, 200) + 1):
                handle = f"88.123.1/H-{k}"
                if records(handle):
                    _, verdict = trust_client.verify(handle, records, roots)
                    assert set(verdict.values()) == {"verified"}, verdict
                    checked += 1
            print(
                f"client verification (3 native lookups and 3 signature checks each): {(time.perf_counter() - started) / checked * 1000:.2f} ms per record over {checked}"
            )
        finally:
            stop(process)


if __name__ == "__main__":
    main()
