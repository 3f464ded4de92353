"""schemathesis over the node's whole OpenAPI description, against the real `resolver serve`.

Every operation of /openapi.json gets a bounded number of generated requests (derandomized: the same
requests on every run), with the node administrator's Basic credentials on the Handle and operator
APIs and an enterprise user's bearer token on the enterprise API, so the authenticated paths are
exercised too. Each answer must not be a server error and must agree with the description: status
code, content type, body schema, documented headers. No reference file: Handle.Net publishes no
OpenAPI description; the error shapes are resolver/http/errors.py and envelope.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.helpers import TEMPLATE, basic, scratch_database
from tests.nodes import Node, admit_over_http, start_node

pytestmark = pytest.mark.e2e

PREFIX = "88.123.91"
PASSWORD = "password-openapi"
HANDLE = f"{PREFIX}/openapi"
EXAMPLES = (
    20  # per operation (52 of them, valid and invalid requests): ~15 s here, well under a minute loaded
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def node(template_ready: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        tmp: Path = tmp_path_factory.mktemp("openapi")
        running = start_node(tmp, "--dsn", dsn, "--rate-per-address", "0", "--rate-per-credential", "0")
        try:
            admit_over_http(running.url, PREFIX, 91, "openapi", PASSWORD)
            made = requests.put(
                f"{running.url}/api/handles/{HANDLE}",
                json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/openapi"}]},
                headers=basic(),
                timeout=30,
            )
            assert made.status_code in (200, 201), made.text
            yield running
        finally:
            code = running.stop()
            assert code == 0, running.log.read_text()


def _token(url: str) -> str:
    body = requests.post(
        f"{url}/identity/token", json={"username": "openapi", "password": PASSWORD}, timeout=30
    ).json()
    assert body["status"] == 1, body
    return str(body["data"]["token"])


@schemathesis.serializer("application/x-hdl-message")
def _native(_ctx: object, value: object) -> bytes:
    """Generated native bodies as sent: bytes (any other generated value as its text)."""
    return value if isinstance(value, bytes) else str(value).encode()


def _exercise(
    operation: schemathesis.APIOperation, headers: dict[str, str], calls: list[str]
) -> Callable[[], None]:
    """A hypothesis test of one operation, bounded and reproducible."""

    # valid requests and invalid ones (wrong types, missing required parts): both must be answered as described
    @given(
        case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    )
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if case.path_parameters and "handle" in case.path_parameters and len(calls) % 2:
            case.path_parameters["handle"] = HANDLE  # every other request names a handle that exists
        if case.query and "prefix" in case.query and len(calls) % 2:
            case.query["prefix"] = PREFIX  # and a prefix that is homed here
        response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
        calls.append(f"{operation.label} {response.status_code}")

    return run


def test_served_description_names_the_node(node: Node) -> None:
    """/openapi.json is the stored description with the node's own URL; /docs loads only local files."""
    doc = requests.get(f"{node.url}/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.1.")
    assert doc["servers"] == [{"url": node.url}]
    page = requests.get(f"{node.url}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/docs/swagger-ui-bundle.js" in page.text and "https://" not in page.text
    bundle = requests.get(f"{node.url}/docs/swagger-ui-bundle.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_schemathesis_finds_no_contradiction(node: Node) -> None:
    """0 server errors and 0 answers that contradict the description, over every operation."""
    schema = schemathesis.openapi.from_url(f"{node.url}/openapi.json")
    admin = basic()
    bearer = {"Authorization": f"Bearer {_token(node.url)}"}
    failures: list[str] = []
    calls: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        tags = operation.definition.raw.get("tags", [])
        if operation.path == "/identity/logout":
            headers: dict[str, str] = {}  # logging out the test's own token would end it
        elif "enterprise" in tags or "templates" in tags:
            headers = bearer
        elif operation.path == "/identity/token":
            headers = {}
        else:
            headers = admin

        run = _exercise(operation, headers, calls)
        try:
            run()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # schemathesis's FailureGroup too: every operation runs, all reported
            failures.append(f"{operation.label}: {exc}")
    print(f"schemathesis: {operations} operations, {len(calls)} requests", sorted(set(calls)))
    assert operations >= 30
    assert len(calls) >= operations * 3
    assert not failures, "\n\n".join(failures)
