"""Daily counts name only the prefixes the node serves, and stay bounded whatever is asked for."""

from __future__ import annotations

import random

import pytest

from resolver.services.statistics import MAX_PENDING_PREFIXES, OTHER, DailyCounter, ServedPrefixes

SERVED = ServedPrefixes("88.123", ["88.123.45", "88.123.45.6", "88.123.7"])


@pytest.mark.parametrize(
    ("prefix", "found", "label"),
    [
        ("88.123", True, "88.123"),
        ("88.123", False, "88.123"),
        ("88.123.45", True, "88.123.45"),
        ("88.123.45", False, "88.123.45"),
        # below an allocated prefix: that enterprise's (the nearest one)
        ("88.123.45.9", False, "88.123.45"),
        ("88.123.45.6.1", True, "88.123.45.6"),
        # under the node prefix, nobody's: an identifier there is the node administrator's; a
        # not-found answer is a stranger's guess
        ("88.123.99", True, "88.123"),
        ("88.123.99", False, OTHER),
        ("88.123.4", False, OTHER),  # not a parent of 88.123.45
        ("88.1234", False, OTHER),
        # prefix records are the node's
        ("0.na", True, "88.123"),
        ("0.na", False, OTHER),
        # other nodes' identifiers (recursion): not-found answers in the bucket, resolutions not ours
        ("7.7.7", False, OTHER),
        ("7.7.7", True, None),
        (OTHER, False, OTHER),
        (OTHER, True, None),
    ],
)
def test_labels(prefix: str, found: bool, label: str | None):
    assert SERVED.label(prefix, found) == label


def test_counts_fold_into_labels():
    counter = DailyCounter("88.123")
    counter.served = SERVED
    for prefix in ("88.123.45", "88.123.45.1", "88.123.45.2", "88.123.99", "7.7.7", "88.123"):
        counter.resolved(prefix)
        counter.not_found(prefix)
    counter.registered("88.123.99", 2)
    assert SERVED.fold_counts(counter.counts) == {
        "88.123.45": [0, 3, 3],
        "88.123": [2, 2, 1],
        OTHER: [0, 0, 2],
    }


def test_a_flood_of_prefixes_keeps_memory_bounded_and_served_prefixes_named():
    counter = DailyCounter("88.123")
    counter.served = SERVED
    rng = random.Random(9)
    for i in range(50_000):
        counter.not_found(f"{rng.randrange(10**6)}.{rng.randrange(10**6)}")
        counter.not_found(f"88.123.{rng.randrange(10**9)}")
        counter.resolved(f"{rng.randrange(10**6)}.7")  # resolved through recursion
        if i % 100 == 0:
            counter.resolved("88.123.45")
            counter.not_found("88.123.7.1")
    assert len(counter.counts) <= MAX_PENDING_PREFIXES + 3
    labelled = SERVED.fold_counts(counter.counts)
    assert labelled == {"88.123.45": [0, 500, 0], "88.123.7": [0, 0, 500], OTHER: [0, 0, 100_000]}
