"""Indexing: which files (``files``), one video -> segments (``encode``), a run over many files (``run``).

Names load on first use, so ``from salova.pipeline.run import run_index`` does not import torch: a run with
nothing to encode never needs it.
"""

from importlib import import_module

_WHERE = {
    "VIDEO_EXTENSIONS": "files", "content_hash": "files", "discover": "files", "is_unchanged": "files",
    "FileOutcome": "outcome", "Indexer": "encode",
    "IndexOptions": "run", "IndexSummary": "run", "merge_shards": "run", "run_index": "run",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'salova.pipeline' has no attribute {name!r}")
    return getattr(import_module(f"salova.pipeline.{_WHERE[name]}"), name)
