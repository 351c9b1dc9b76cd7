"""Indexing: which files (``files``), one video -> segments (``encode``), a run over many files (``run``)."""

from salova.pipeline.encode import FileOutcome, Indexer
from salova.pipeline.files import VIDEO_EXTENSIONS, content_hash, discover, is_unchanged
from salova.pipeline.run import IndexOptions, IndexSummary, merge_shards, run_index

__all__ = [
    "VIDEO_EXTENSIONS",
    "FileOutcome",
    "IndexOptions",
    "IndexSummary",
    "Indexer",
    "content_hash",
    "discover",
    "is_unchanged",
    "merge_shards",
    "run_index",
]
