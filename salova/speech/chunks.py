"""Transcript lines -> text chunks: a few consecutive sentences, never across a segment boundary.

A chunk is what the speech channel embeds and matches. Rule (greedy, in time order): a line joins the open
chunk unless the chunk already has ``max_lines`` lines, would span more than ``max_s`` seconds, or the line
starts in another segment than the chunk's first line; then it opens a new chunk. A chunk belongs to the
segment its first line starts in.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from salova.speech.transcribe import Line

MAX_LINES = 3  # sentences per chunk
MAX_SECONDS = 30.0  # a chunk's longest span


@dataclass
class Chunk:
    segment: int  # segments.idx the chunk belongs to
    first_line: int
    last_line: int  # inclusive
    start_s: float
    end_s: float
    text: str


def segment_of(starts: Sequence[float], t: float) -> int:
    """Index of the segment (sorted start times) that contains time ``t``."""
    return max(0, bisect.bisect_right(list(starts), t) - 1)


def make_chunks(lines: Sequence[Line], segment_starts: Sequence[float], max_lines: int = MAX_LINES,
                max_s: float = MAX_SECONDS) -> list[Chunk]:
    chunks: list[Chunk] = []
    open_: list[int] = []

    def close() -> None:
        if open_:
            first, last = lines[open_[0]], lines[open_[-1]]
            chunks.append(Chunk(segment_of(segment_starts, first.start_s), open_[0], open_[-1], first.start_s,
                                last.end_s, " ".join(lines[i].text for i in open_)))
            open_.clear()

    for i, line in enumerate(lines):
        if open_:
            first = lines[open_[0]]
            if (len(open_) >= max_lines or line.end_s - first.start_s > max_s
                    or segment_of(segment_starts, line.start_s) != segment_of(segment_starts, first.start_s)):
                close()
        open_.append(i)
    close()
    return chunks
