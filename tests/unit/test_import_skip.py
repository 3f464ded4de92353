"""Which lines a resumed import skips: the chunks that committed, possibly out of order."""

from __future__ import annotations

from resolver.bulk.importer import Skip


def skipped(skip: Skip, last: int) -> list[int]:
    return [line for line in range(1, last + 1) if line in skip]


def test_contiguous_chunks_from_the_start_of_a_csv_file():
    skip = Skip.from_chunks([(42, 81), (2, 41)], header_lines=1)
    assert skip.upto == 81 and skipped(skip, 90) == list(range(1, 82))


def test_a_chunk_that_committed_after_a_gap_is_skipped_too():
    skip = Skip.from_chunks([(2, 41), (82, 121)], header_lines=1)
    assert skip.upto == 41
    assert skipped(skip, 130) == list(range(1, 42)) + list(range(82, 122))


def test_json_lines_start_at_line_one_and_a_missing_first_chunk_is_not_skipped():
    assert skipped(Skip.from_chunks([], header_lines=0), 5) == []
    skip = Skip.from_chunks([(11, 20)], header_lines=0)
    assert skip.upto == 0 and skipped(skip, 25) == list(range(11, 21))


def test_chunks_that_overlap_a_committed_range_after_a_resume():
    # a resumed run's chunk spans lines around a range that had committed before
    skip = Skip.from_chunks([(2, 41), (82, 140), (122, 131)], header_lines=1)
    assert skip.upto == 41 and skipped(skip, 150) == list(range(1, 42)) + list(range(82, 141))
