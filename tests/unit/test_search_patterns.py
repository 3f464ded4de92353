"""Reverse-lookup patterns (resolver/core/search.py) and the admission of searches
(resolver/http/search.py), without a database.

The oracle for what a pattern matches is a regular expression made from it (`*`: any characters);
the oracle for the index's order is Python's string order, which is code point order, the order of
UTF-8 bytes that Postgres compares with text_pattern_ops.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolver.core.search import (
    MAX_WINDOW,
    SearchRefused,
    TooManySearches,
    parse_pattern,
    plan_search,
    successor,
)
from resolver.http.search import Searches, SearchesBusy


def matches(pattern: str, value: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, re.S) is not None


def like_matches(like: str, text: str) -> bool:
    """SQL LIKE with backslash as the escape character."""
    regex, escaped = [], False
    for char in like:
        if escaped:
            regex.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    return re.fullmatch("".join(regex), text, re.S) is not None


values = st.text(alphabet=st.sampled_from("ab/*%_\\é\U0010ffff\ud7ff\ue000"), max_size=8)
patterns = values.filter(lambda p: not (p.lstrip("*") and p.startswith("*")))


def test_exact_prefix_star_and_filtered_patterns():
    exact = parse_pattern("URL", "https://example.com/p/1")
    assert (exact.low, exact.high, exact.like) == (
        "url=https://example.com/p/1",
        "url=https://example.com/p/1\x01",
        "url=https://example.com/p/1",
    )
    assert exact.exact and not exact.filtered
    prefix = parse_pattern("url", "https://example.com/p/*")
    assert (prefix.low, prefix.high) == ("url=https://example.com/p/", "url=https://example.com/p0")
    assert not prefix.exact and not prefix.filtered
    every = parse_pattern("URL", "**")
    assert (every.low, every.high, every.like, every.filtered) == ("url=", "url>", "url=%", False)
    inner = parse_pattern("URL", "https://a/*/m_1%")
    assert (inner.low, inner.like, inner.filtered) == ("url=https://a/", "url=https://a/%/m\\_1\\%", True)


@pytest.mark.parametrize("pattern", ["*p/1", "**x", "*example*", "*/"])
def test_a_pattern_that_begins_with_a_star_and_goes_on_is_refused(pattern):
    with pytest.raises(SearchRefused) as refused:
        parse_pattern("URL", pattern)
    assert refused.value.rc == 4 and "cannot begin with *" in refused.value.message


@given(patterns, values)
def test_the_range_holds_every_match_and_only_matches_when_not_filtered(pattern, value):
    planned = parse_pattern("URL", pattern)
    term = f"url={value}"
    in_range = planned.low <= term < planned.high
    assert like_matches(planned.like, term) == matches(pattern, value)
    if matches(pattern, value):
        assert in_range
    if not planned.filtered:
        assert in_range == matches(pattern, value)


@given(st.text(min_size=1).filter(lambda s: s.strip("\U0010ffff")), st.text())
def test_successor_bounds_exactly_the_strings_with_that_start(start, text):
    high = successor(start)
    assert (start <= text < high) == text.startswith(start)
    assert (start <= start + text < high) is True


def test_the_narrowest_pattern_drives_a_search_and_deep_pages_are_refused():
    plan = plan_search([("URL", "https://*"), ("checksum", "abc"), ("URL", "https://example.com/*")], 10, 3)
    assert plan.first.low == "checksum=abc"
    assert [p.low for p in plan.rest] == ["url=https://example.com/", "url=https://"]
    assert (plan.offset, plan.limit) == (30, 10)
    assert plan_search([("URL", "*")], 10, MAX_WINDOW // 10 - 1).offset == MAX_WINDOW - 10
    with pytest.raises(SearchRefused) as refused:
        plan_search([("URL", "*")], 10, MAX_WINDOW // 10)
    assert refused.value.rc == 4 and "narrow the pattern" in refused.value.message


async def test_a_tenant_has_its_allowance_and_others_keep_theirs():
    searches = Searches(concurrency=2, per_tenant=1, timeout=30.0)
    release = asyncio.Event()
    admitted = asyncio.Event()

    async def hold(tenant: str) -> None:
        async with searches.admit(tenant):
            admitted.set()
            await release.wait()

    first = asyncio.create_task(hold("enterprise 1"))
    await admitted.wait()
    with pytest.raises(TooManySearches) as refused:
        async with searches.admit("enterprise 1"):
            pass
    assert refused.value.status == 429 and refused.value.retry_after == 1
    async with searches.admit("enterprise 2") as seconds:
        assert 0 < seconds <= 30.0
    release.set()
    await first
    async with searches.admit("enterprise 1"):
        pass  # its allowance is back once its search has answered


async def test_waiting_for_a_turn_ends_at_the_deadline():
    searches = Searches(concurrency=1, per_tenant=1, timeout=0.05)
    release = asyncio.Event()
    admitted = asyncio.Event()

    async def hold() -> None:
        async with searches.admit("enterprise 1"):
            admitted.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await admitted.wait()
    with pytest.raises(SearchesBusy) as busy:
        async with searches.admit("enterprise 2"):
            pass
    assert busy.value.rc == 3 and busy.value.retry_after == 1
    release.set()
    await holder
    async with searches.admit("enterprise 2"):
        pass  # neither the refused wait nor the finished search kept a slot
