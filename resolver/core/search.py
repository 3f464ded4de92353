"""Reverse-lookup patterns, and the part of the index each one reads.

A searchable value is stored as a term `<type folded>=<value>` in an index ordered by prefix, then
by the term's bytes, then by key. A pattern is a value in which `*` stands for any characters. The
part before its first `*` is a range of that order: an exact value is a range of one term, `value*`
the terms that start with it, `*` every term of the type; the range is read in order and the
reading stops once the page is full. What follows a first `*` (`https://example.com/*/manual`)
narrows nothing: the terms of the range are checked one by one, and a search that has to check
many for few matches takes the time it takes, up to the node's search deadline. A pattern that
begins with `*` and goes on (`*/manual`) could only be answered by reading every term, so it is
refused.
"""

from __future__ import annotations

from typing import NamedTuple

from resolver.core.errors import RC, HandleError, RateLimited
from resolver.core.handles import fold
from resolver.core.values import StoredValue

MAX_LIMIT = 10_000
# A search reads at most this many matches in order (page x limit + limit): deeper pages are refused.
MAX_WINDOW = 100_000
_LAST_CHARACTER = 0x10FFFF


class SearchRefused(HandleError):
    """A search the index cannot answer in bounded time (400, rc 4)."""

    def __init__(self, message: str) -> None:
        super().__init__(RC.PROTOCOL_ERROR, message)


class SearchTimeout(HandleError):
    """A search stopped at the node's search deadline (503, rc 3, no Retry-After: the same search
    would take as long again)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            RC.SERVER_TOO_BUSY,
            f"the search was stopped after {seconds:g} s: too broad; give more of the value before "
            "the first * or ask for an earlier page",
        )
        self.seconds = seconds


class TooManySearches(RateLimited):
    """The tenant already runs as many searches as it may at once (429, rc 3, Retry-After: 1)."""

    def __init__(self, allowed: int) -> None:
        super().__init__(1)
        self.message = (
            f"too many searches at once: a tenant runs at most {allowed} at a time; "
            "send the next when one has answered"
        )
        self.args = (self.message,)


class Pattern(NamedTuple):
    """What one `type=pattern` reads: the terms from `low` (included) to `high` (excluded) that
    match the LIKE pattern `like`."""

    low: str
    high: str
    like: str
    # A value without `*`: the range is one term.
    exact: bool
    # Something follows the first `*`: terms of the range must be checked against `like`.
    filtered: bool


class SearchPlan(NamedTuple):
    """The range that drives a search, the other patterns its matches must also have, one page."""

    first: Pattern
    rest: list[Pattern]
    offset: int
    limit: int


def successor(text: str) -> str:
    """The first string past every string that starts with `text`, in code point (UTF-8 byte) order."""
    stripped = text.rstrip(chr(_LAST_CHARACTER))
    if not stripped:
        raise ValueError("no string follows every string starting with this one")
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters of UTF-8 text
        following = 0xE000
    return stripped[:-1] + chr(following)


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_pattern(value_type: str, value: str) -> Pattern:
    """The index range and LIKE pattern of `type=value`; raises SearchRefused for a pattern that
    begins with `*` and goes on."""
    while "**" in value:
        value = value.replace("**", "*")
    head, star, tail = value.partition("*")
    if star and not head and tail:
        raise SearchRefused(
            f"{value_type}={value}: a pattern cannot begin with * (only the start of a value is indexed); "
            "give the start, as in https://example.com/*, or * alone for every value"
        )
    start = f"{fold(value_type)}={head}"
    like = _like_literal(start) + ("%" + _like_literal(tail).replace("*", "%") if star else "")
    if not star:
        # no text holds NUL, so nothing lies between a term and the term followed by U+0001
        return Pattern(start, start + "\x01", like, exact=True, filtered=False)
    return Pattern(start, successor(start), like, exact=False, filtered=bool(tail))


def _narrowness(pattern: Pattern) -> tuple[bool, bool, int]:
    return (not pattern.exact, pattern.filtered, -len(pattern.low))


def plan_search(terms: list[tuple[str, str]], limit: int, page: int) -> SearchPlan:
    """The plan of a search by several `(type, pattern)` (all must match): the narrowest pattern is
    read, exact values first, then the longest starts; the others are checked on its matches."""
    if not terms:
        raise ValueError("a search needs at least one term")
    if page * limit + limit > MAX_WINDOW:
        raise SearchRefused(
            f"page {page} of {limit} reaches past the first {MAX_WINDOW} matches; narrow the pattern instead"
        )
    patterns = sorted((parse_pattern(t, v) for t, v in terms), key=_narrowness)
    return SearchPlan(patterns[0], patterns[1:], page * limit, limit)


# Values longer than this are not indexed for reverse lookup: a btree entry must stay under
# 2704 bytes (the limit is on bytes: 1,000 four-byte characters are too many).
MAX_TERM_LENGTH = 1000
MAX_TERM_BYTES = 2000


def term_fits(term: str) -> bool:
    """True when a reverse-lookup term is small enough for its btree index."""
    return len(term) <= MAX_TERM_BYTES // 4 or (
        len(term) <= MAX_TERM_BYTES and len(term.encode("utf-8", "surrogatepass")) <= MAX_TERM_BYTES
    )


def search_terms(values: list[StoredValue], search_types: frozenset[str]) -> list[str]:
    """The reverse-lookup terms of a record: `<type folded>=<value>` for the searchable types."""
    terms = []
    for value in values:
        value_type = fold(value["type"])
        if value_type in search_types:
            data = value["data"]["value"]
            if isinstance(data, str) and len(data) <= MAX_TERM_LENGTH:
                term = f"{value_type}={data}"
                if term_fits(term):
                    terms.append(term)
    return terms
