"""Every input limit gives a clear error in the documented shape."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import quote

import pytest

from resolver.config import Limits
from tests.helpers import admin_json, basic, no_rate_limits, serving


@pytest.fixture
async def small(config):
    limits = Limits(
        max_handle_length=40,
        max_prefix_length=12,
        max_values_per_handle=3,
        max_value_bytes=50,
        max_type_length=10,
        max_body_bytes=2000,
    )
    async with serving(replace(config, limits=limits)) as test_client:
        yield test_client


def values(*items: dict[str, object]) -> dict[str, object]:
    return {"json": {"values": list(items)}}


PATH = "/api/handles/88.123/v"

# One row per limit of `small`: the request that exceeds it (method, path, aiohttp request keywords,
# sent with the administrator's credentials or not) and the answer: HTTP status, responseCode, and a
# word the message must hold (the limit, or what is wrong).
LIMITS = [
    ("handle length", "GET", "/api/handles/88.123/" + "x" * 40, {}, False, 400, 102, "40"),
    ("prefix length", "GET", "/api/handles/88.123.4567890123/x", {}, False, 400, 102, "prefix"),
    (
        "values per handle",
        "PUT",
        PATH,
        values(*({"index": i, "type": "T", "data": "x"} for i in range(1, 5))),
        True,
        400,
        202,
        "3",
    ),
    ("value size", "PUT", PATH, values({"index": 1, "type": "T", "data": "x" * 60}), True, 400, 202, "bytes"),
    ("type length", "PUT", PATH, values({"index": 1, "type": "T" * 11, "data": "x"}), True, 400, 202, "type"),
    ("body size", "PUT", PATH, {"data": b"[" + b" " * 3000 + b"]"}, True, 413, 4, "2000"),
    ("index range", "PUT", PATH, values({"index": 2**31, "type": "T", "data": "x"}), True, 400, 202, "index"),
    ("control characters in the handle", "GET", "/api/handles/88.123/a%01b", {}, False, 400, 102, "control"),
    ("malformed UTF-8 in the path", "GET", "/api/handles/88.123/a%ff%fe", {}, False, 400, 102, "UTF-8"),
    (
        "malformed UTF-8 in the body",
        "PUT",
        PATH,
        {"data": b'[{"index":1,"type":"T","data":"\xff"}]'},
        True,
        400,
        4,
        "UTF-8",
    ),
    ("query parameter index", "GET", PATH, {"params": {"index": "x"}}, False, 400, 4, "index"),
    (
        "query parameter overwrite",
        "PUT",
        PATH,
        {"params": {"overwrite": "maybe"}, "json": []},
        True,
        400,
        4,
        "overwrite",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "request_keywords", "as_admin", "status", "rc", "said"),
    [pytest.param(*row[1:], id=row[0]) for row in LIMITS],
)
async def test_an_exceeded_limit_is_a_clear_error_in_the_handle_shape(
    small, method, path, request_keywords, as_admin, status, rc, said
):
    headers = admin_json() if as_admin else {}
    resp = await small.request(method, path, headers=headers, **request_keywords)
    body = await resp.json()
    assert resp.status == status and resp.content_type == "application/json", body
    assert body["responseCode"] == rc and said in body["message"], body


async def test_one_credential_has_one_bucket_however_its_header_is_written(config):
    """The per-credential bucket is the credential's, not the header's: other spellings of the same
    bearer token or Basic user (which authenticate just the same) take from it."""
    from tests.enterprise_helpers import admit, user_token
    from tests.helpers import ADMIN_SECRET, ADMIN_USER

    async with serving(replace(config, rate=no_rate_limits())) as setup:  # setup has its own budget
        enterprise, _ = await admit(setup, "88.123.45", 70)
        token = await user_token(setup, enterprise, "limited-user")

    def basic_as(user: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{ADMIN_SECRET}".encode()).decode()}

    spellings = {
        "bearer": [f"Bearer  {token}", f"bearer {token}", token, f"BEARER {token}", f"Bearer {token}"],
        "basic": [
            basic()["Authorization"],
            basic_as(quote(ADMIN_USER, safe=""))["Authorization"],
            basic_as(quote(ADMIN_USER, safe="").lower())["Authorization"],
            "basic  " + basic()["Authorization"].partition(" ")[2],
            basic_as(quote(ADMIN_USER.lower()))["Authorization"],
        ],
    }
    # two requests a credential, and no token back in the test's lifetime
    rate = replace(no_rate_limits(), per_credential=0.001, per_credential_burst=2)
    async with serving(replace(config, rate=rate)) as client:
        for kind, headers in spellings.items():
            statuses = []
            for header in headers:
                resp = await client.get(
                    "/hrls/handles", params={"URL": "x"}, headers={"Authorization": header}
                )
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["responseCode"] == 3 and int(resp.headers["Retry-After"]) >= 1, body
            # the first two spellings are accepted (they are this credential), the rest share their bucket
            assert statuses == [200, 200, 429, 429, 429], (kind, statuses)


async def test_naming_someone_elses_identity_does_not_spend_its_credential_budget(config):
    """Found when sealed secret keys made wrong guesses cheap (tests/security/test_brute_force.py,
    the real node under a flood): the per-credential bucket was keyed by the user name alone, so
    a stranger sending the administrator's name with guesses emptied the administrator's budget.
    Guesses are the failed-authentication limits' business; the credential bucket holds only
    requests that present the same secret."""
    from tests.helpers import ADMIN_SECRET, ADMIN_USER

    rate = replace(no_rate_limits(), per_credential=0.001, per_credential_burst=2)
    async with serving(replace(config, rate=rate)) as client:
        for i in range(6):
            resp = await client.get(
                "/hrls/handles", params={"URL": "x"}, headers=basic(ADMIN_USER, f"guess-{i}")
            )
            assert resp.status == 401, await resp.json()
        statuses = []
        for _ in range(3):
            resp = await client.get(
                "/hrls/handles", params={"URL": "x"}, headers=basic(ADMIN_USER, ADMIN_SECRET)
            )
            statuses.append(resp.status)
    assert statuses == [200, 200, 429]
