"""The page of a listing a request asks for: `page` and its size, checked against named bounds.

Each listing keeps its own size bound (the Handle API's `--max-page-size`, the operator API's
1000, a search's `limit` up to the index's window); the parsing and the page bound are one.
"""

from __future__ import annotations

from collections.abc import Mapping

from resolver.core.values import parse_int

MAX_PAGE = 10_000_000  # pages beyond this are refused whatever the size


def page_and_size(
    query: Mapping[str, str], *, size_key: str, default: int, smallest: int, largest: int
) -> tuple[int, int]:
    """(page, page size) from the query; HandleError (rc 4 via the caller's API) when either is
    not an integer in its bounds."""
    page = parse_int(query.get("page", "0"), "page", 0, MAX_PAGE)
    size = parse_int(query.get(size_key, str(default)), size_key, smallest, largest)
    return page, size
