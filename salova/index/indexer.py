"""Deprecated module path, kept for one release: use ``salova.pipeline``."""

from salova.pipeline import IndexOptions, IndexSummary, content_hash, discover, is_unchanged, merge_shards, run_index

__all__ = ["IndexOptions", "IndexSummary", "content_hash", "discover", "is_unchanged", "merge_shards", "run_index"]
