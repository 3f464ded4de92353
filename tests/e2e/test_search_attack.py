"""The reverse-lookup attack of issue 13 item 8, through the real process over real sockets: one
tenant fires broad searches on many connections at once at `resolver serve --workers 2` while
another tenant writes. Every search answers a correct page of the searcher's own identifiers or a
clear refusal (429: the tenant's searches at once), never 503 "database unavailable", a 500 or a
dropped connection; every write of the other tenant is acknowledged and there.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import aiohttp
import pytest
import requests

from tests.enterprise_helpers import product
from tests.nodes import admit_over_http, start_node
from tests.search_helpers import answer_order, seed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

A, B = "88.123.45", "88.123.46"
SEARCHERS = 24
ROUNDS = 6  # searches per searcher: every loop is bounded by a count, not by the clock
WRITES = 30


def token(url: str, username: str, password: str) -> dict[str, str]:
    answer = requests.post(
        f"{url}/identity/token", json={"username": username, "password": password}, timeout=30
    ).json()
    return {"Authorization": f"Bearer {answer['data']['token']}"}


async def attack(url: str, a: dict[str, str], b: dict[str, str], expected: dict[str, list[str]]) -> None:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=SEARCHERS + 2, force_close=False)
    answers: collections.Counter[tuple[int, str]] = collections.Counter()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def searcher(number: int) -> None:
            queries = list(expected)
            for turn in range(ROUNDS):
                query = queries[(number + turn) % len(queries)]
                async with session.get(f"{url}/hrls/handles?{query}", headers=a) as resp:
                    body = await resp.json(content_type=None)
                if resp.status == 200:
                    assert body == expected[query], query
                    answers[(200, query)] += 1
                else:
                    assert resp.status == 429 and body["responseCode"] == 3, (resp.status, body)
                    assert "too many searches at once" in body["message"], body
                    answers[(429, "")] += 1

        async def writer() -> list[str]:
            written = []
            for number in range(WRITES):
                handle = f"{B}/DURING-{number}"
                async with session.post(f"{url}/identityv2/data", json=product(handle), headers=b) as resp:
                    body = await resp.json(content_type=None)
                assert resp.status == 200 and body["status"] == 1, body
                written.append(handle)
            return written

        *_, written = await asyncio.gather(*(searcher(n) for n in range(SEARCHERS)), writer())
        for handle in written:
            async with session.get(f"{url}/api/handles/{handle}") as resp:
                assert resp.status == 200, handle
    assert sum(answers.values()) == SEARCHERS * ROUNDS
    assert any(status == 200 for status, _ in answers), answers


def test_broad_searches_of_one_tenant_on_24_connections(fresh_database: str, tmp_path: Path):
    rows = asyncio.run(seed(fresh_database, A, 20_000))
    asyncio.run(seed(fresh_database, B, 50))
    node = start_node(
        tmp_path,
        "--workers",
        "2",
        "--dsn",
        fresh_database,
        # the abuse buckets off: the per-tenant search limit is what is under test
        "--rate-per-address",
        "0",
        "--rate-per-credential",
        "0",
        # a deadline no search of this size reaches on any machine: a 503 here would be a defect
        "--search-timeout",
        "60",
    )
    try:
        admit_over_http(node.url, A, 70, "attacker", "password-a1")
        admit_over_http(node.url, B, 71, "bystander", "password-b1")
        a, b = token(node.url, "attacker", "password-a1"), token(node.url, "bystander", "password-b1")
        mine = answer_order(rows)
        expected = {
            "URL=https://example.com/p/*": mine[:1000],
            "URL=*": mine[:1000],
            "URL=https://example.com/p/*&limit=10&page=100": mine[1000:1010],
            "URL=https://example.com/p/*&limit=10": mine[:10],
        }
        asyncio.run(attack(node.url, a, b, expected))
    finally:
        code = node.stop()
    log = node.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log and "unexpected error" not in log, log
