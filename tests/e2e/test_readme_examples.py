"""The README's shell examples, run as written against the real `resolver serve` (issue 16: the
batch examples sent `[{...}]`, the credit code was a placeholder, the audit example ran before any
write). The blocks that use `$NODE` up to the line naming this test are one script, in order;
only the node's address and the administrator's secret (the one the reader gave) are replaced. `curl` is wrapped to keep each answer: every call must
succeed (HTTP below 400, a Handle answer's responseCode 1, an envelope's status 1)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.helpers import ADMIN_SECRET
from tests.nodes import start_node

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[2] / "README.md"
WRAPPER = r"""
set -euo pipefail
curl() {
  local n
  n=$(ls "$OUT" | wc -l)
  n=$(printf '%04d' "$n")
  command curl -sS -o "$OUT/$n.body" -w '%{http_code} %{url_effective}' "$@" > "$OUT/$n.status"
  cat "$OUT/$n.body"
}
"""


def examples() -> str:
    text = README.read_text(encoding="utf-8")
    text = text[: text.index("`tests/e2e/test_readme_examples.py` runs these")]
    blocks = [b for b in re.findall(r"```sh\n(.*?)```", text, re.DOTALL) if "$NODE" in b]
    return "\n".join(blocks)


def test_the_examples_are_the_ones_described() -> None:
    script = examples()
    assert script.startswith("NODE=http://127.0.0.1:8000\n"), script[:80]
    for call in ("batchCreate", "batchUpdate", "batchDelete", "/admin/audit", "/identity/logout"):
        assert call in script
    assert "{...}" not in script and "<18" not in script


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples are curl commands")
def test_readme_examples_run_as_written(tmp_path: Path, fresh_database: str) -> None:
    node = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database)
    out = tmp_path / "answers"
    out.mkdir()
    script = examples().replace("NODE=http://127.0.0.1:8000", f"NODE={node.url}", 1)
    script = script.replace(":change-me'", f":{ADMIN_SECRET}'")  # the secret the README's reader gave
    try:
        run = subprocess.run(
            ["bash", "-c", WRAPPER + script],
            env={"PATH": "/usr/bin:/bin", "OUT": str(out)},
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        node.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    answers = sorted(out.glob("*.status"))
    assert len(answers) == script.count("curl "), (len(answers), run.stdout[-2000:])
    problems = []
    for status_file in answers:
        status, _, url = status_file.read_text().partition(" ")
        body = status_file.with_suffix(".body").read_bytes()
        if int(status) >= 400:
            problems.append(f"{url}: HTTP {status} {body[:300]!r}")
            continue
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue  # the redirect and the page
        if isinstance(document, dict) and document.get("responseCode", 1) != 1:
            problems.append(f"{url}: responseCode {document['responseCode']} {body[:300]!r}")
        if isinstance(document, dict) and document.get("status", 1) != 1:
            problems.append(f"{url}: status {document['status']} {body[:300]!r}")
    assert not problems, "\n".join(problems)
    # the audit example answers the writes made before it
    audit = next(
        orjson.loads(f.with_suffix(".body").read_bytes()) for f in answers if "/admin/audit" in f.read_text()
    )
    assert audit["data"]["items"], audit
