"""An enterprise's day through the real process: admitted, registers in batches, resolves via the
Handle API and the proxy, and pyhandle works with its prefix administrator."""

from __future__ import annotations

import pytest
import requests
from pyhandle.handleclient import PyHandleClient
from pyhandle.handleexceptions import GenericHandleError

from tests.enterprise_helpers import product
from tests.helpers import basic
from tests.nodes import admit_over_http

pytestmark = pytest.mark.e2e


def test_enterprise_lifecycle_over_http(node):
    url = node.url
    admin = basic()
    secret = admit_over_http(url, "88.123.77", 77, "e2e", "password-e2e")
    token = requests.post(
        f"{url}/identity/token", json={"username": "e2e", "password": "password-e2e"}, timeout=30
    ).json()["data"]["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    items = [product(f"88.123.77/E2E-{i:04d}") for i in range(500)]
    items[7]["value"].append(
        {"index": 2009, "type": "URL", "data": {"format": "string", "value": "https://example.com/e2e/7"}}
    )
    answer = requests.post(
        f"{url}/identityv2/data/batchCreate", json=items, headers=bearer, timeout=60
    ).json()
    assert answer["status"] == 1 and all(r["code"] == 1 for r in answer["data"])

    resolved = requests.get(f"{url}/api/handles/88.123.77/e2e-0007", timeout=10).json()
    assert resolved["handle"] == "88.123.77/e2e-0007" and {v["index"] for v in resolved["values"]} == {
        1001,
        2000,
        2004,
        2009,
    }
    redirect = requests.get(f"{url}/88.123.77/E2E-0007", allow_redirects=False, timeout=10)
    assert redirect.status_code == 302 and redirect.headers["Location"] == "https://example.com/e2e/7"

    enterprise = PyHandleClient("rest").instantiate_with_username_and_password(
        url, "300:0.NA/88.123.77", secret
    )
    # pyhandle changes the template's URL item in place (index 2009)...
    enterprise.modify_handle_value("88.123.77/E2E-0007", URL="https://example.com/e2e/7b")
    assert enterprise.get_value_from_handle("88.123.77/E2E-0007", "URL") == "https://example.com/e2e/7b"
    detail = requests.get(
        f"{url}/identityv2/data/detail", params={"handle": "88.123.77/E2E-0007"}, headers=bearer, timeout=10
    ).json()
    assert "https://example.com/e2e/7b" in [v["data"]["value"] for v in detail["data"]["value"]]
    # ...but cannot add a value the template does not have: the record keeps to its template
    with pytest.raises(GenericHandleError, match="HTTP Status Code: 400"):
        enterprise.modify_handle_value("88.123.77/E2E-0001", URL="https://example.com/e2e/1")
    trail = requests.get(
        f"{url}/admin/audit", params={"handle": "88.123.77/E2E-0007"}, headers=admin, timeout=10
    ).json()
    assert [e["actor"] for e in reversed(trail["data"]["items"])] == ["user:e2e", "300:0.NA/88.123.77"]
