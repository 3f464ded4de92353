"""How many rows each chunk of an import holds."""

from __future__ import annotations

from resolver.bulk.importer import next_chunk_size


def test_chunks_grow_from_a_small_first_one_and_shrink_towards_the_end():
    total, per_line = 500_000 * 80, 80  # a file of 500,000 lines of 80 bytes
    sizes, size, lines = [10_000], 10_000, 1
    while True:
        lines += size
        if lines * per_line >= total:
            break
        size = next_chunk_size(size, 50_000, lines, lines * per_line, total)
        sizes.append(size)
    assert sizes[:4] == [10_000, 20_000, 40_000, 50_000]
    assert sizes[-3:] == [10_000, 5_000, 5_000]
    assert max(sizes) == 50_000 and sum(sizes) >= 500_000 - 1


def test_chunk_size_never_exceeds_the_configured_rows():
    assert next_chunk_size(20, 20, 100, 8_000, 16_000) == 20
    assert next_chunk_size(20, 20, 100, 15_900, 16_000) == 20
