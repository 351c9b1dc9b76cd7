"""What indexing one file came to (no heavy imports: a run with nothing to encode reports these too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FileOutcome:
    path: str
    status: str  # indexed | updated | reindexed (same file, other settings) | moved | unchanged | failed
    segments: int = 0
    seconds: float = 0.0
    error: str | None = None
    warning: str | None = None  # indexed, but not all of it: e.g. decoding stopped early (truncated/corrupt file)
    moved_from: str | None = None  # status "moved": the path the entry had
