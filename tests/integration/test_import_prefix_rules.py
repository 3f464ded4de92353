"""The importer refuses what every API refuses: a row under a prefix that was never allocated to
an enterprise, or under one that is not enabled (resolver.core.policy.check_enabled, as the
registry applies it); the node's own prefix stays the operator's."""

from __future__ import annotations

import asyncpg

from resolver.bulk.importer import Importer
from tests.bulk_helpers import read_report
from tests.enterprise_helpers import admit
from tests.helpers import basic


async def test_rows_under_unallocated_or_disabled_prefixes_are_refused_with_the_reason(
    client, config, tmp_path
):
    await admit(client, "88.123.45", 45)
    await admit(client, "88.123.46", 46)
    resp = await client.put("/admin/prefixes/88.123.46/state", json={"state": 0}, headers=basic())
    assert (await resp.json())["status"] == 1
    source = tmp_path / "rows.csv"
    source.write_text(
        "handle,1:URL\n"
        "88.123.45/OK-1,https://a\n"  # an enabled enterprise prefix
        "88.123.45.7/SUB-1,https://a\n"  # below it: governed by it, as for the APIs
        "88.123/NODE-1,https://a\n"  # the node's own prefix
        "88.123.99/NEVER-1,https://a\n"  # never allocated
        "88.123.46/OFF-1,https://a\n",  # allocated, disabled
        encoding="utf-8",
    )
    conn = await asyncpg.connect(config.dsn)
    try:
        result = await Importer(config, conn, actor="import:test").run(source)
    finally:
        await conn.close()
    assert (result.accepted, result.rejected) == (3, 2)
    assert result.report is not None
    reasons = {row["handle"]: row["reason"] for row in read_report(result.report)}
    assert set(reasons) == {"88.123.99/NEVER-1", "88.123.46/OFF-1"}
    assert "88.123.99 未分配给任何企业" in reasons["88.123.99/NEVER-1"]
    assert "前缀 88.123.46 未启用" in reasons["88.123.46/OFF-1"]
    for refused in reasons:  # nothing of them was stored
        assert (await client.get(f"/api/handles/{refused}")).status == 404
