"""Small helpers for building requests in tests."""

from __future__ import annotations

import base64
from dataclasses import fields
from urllib.parse import quote

from resolver.config import RateLimits
from tests.conftest import ADMIN_SECRET, ADMIN_USER


def basic(user: str = ADMIN_USER, password: str = ADMIN_SECRET) -> dict[str, str]:
    """The Authorization header pyhandle sends: the user name percent-encoded, colon included."""
    token = base64.b64encode(f"{quote(user)}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def admin_json() -> dict[str, str]:
    return {**basic(), "Content-Type": "application/json"}


def url_value(index: int, url: str) -> dict[str, object]:
    return {"index": index, "type": "URL", "data": {"format": "string", "value": url}}


def no_rate_limits() -> RateLimits:
    """Every abuse limit off (tests that make many requests, or fail on purpose, from one address)."""
    return RateLimits(**{f.name: 0 for f in fields(RateLimits)})
