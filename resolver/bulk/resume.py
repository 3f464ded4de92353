"""Resuming an import: the lines of the file that an earlier run of the same import already wrote."""

from __future__ import annotations

from collections.abc import Sequence


class Skip:
    """The lines an earlier run of the same import already wrote: all up to `upto`, and the
    ranges of chunks that committed after a gap. Asked with increasing line numbers."""

    def __init__(self, upto: int = 0, ranges: Sequence[tuple[int, int]] = ()) -> None:
        self.upto = upto
        self._ranges = [r for r in sorted(ranges) if r[1] > upto]
        self._at = 0

    def __contains__(self, line: object) -> bool:
        assert isinstance(line, int)
        if line <= self.upto:
            return True
        ranges = self._ranges
        while self._at < len(ranges) and ranges[self._at][1] < line:
            self._at += 1
        return self._at < len(ranges) and ranges[self._at][0] <= line

    @classmethod
    def from_chunks(cls, chunks: Sequence[tuple[int, int]], header_lines: int) -> Skip:
        """From committed chunks (first, last line; a chunk starts where the one before it ended):
        the contiguous run from the start of the file, and the chunks after a gap."""
        upto = header_lines
        rest = []
        for first, last in sorted(chunks):
            if first <= upto + 1:
                upto = max(upto, last)
            else:
                rest.append((first, last))
        return cls(upto, rest)
