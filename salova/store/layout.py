"""The files of an index directory: their names, and which array files an index of given dims has.

Every name here is part of the on-disk format documented in docs/index-schema.md:

    index.duckdb                 videos, segments, meta; each change is one transaction (the commit point)
    joint.g<G>.f32               [rows x d_joint]       segment joint-space embeddings, row = segments.vec_row
    routing.g<G>.f32             [rows x d_route]       routing tokens (trained checkpoint only)
    latents.g<G>.f16 | .i8       [rows x L x d_lat]     connector latents (trained checkpoint only)
    latent_scales.g<G>.f32       [rows x L]             int8 scales (latent_dtype 'int8' only)
    frame_times.g<G>.f64         [frames]               1-FPS frame times, rows segments.frame_row ..
    frame_joint.g<G>.f16 | .f32  [frames x d_joint]     per-frame joint-space embeddings
    joint.s<S>.faiss, routing.s<S>.faiss                search caches for commit S, rebuilt when missing
    .lock, .writer               the writer's lock and its holder

G is meta 'generation' (bumped by compaction), S is meta 'seq' (the number of commits).
"""

from __future__ import annotations

import re
from pathlib import Path

from salova.store.arrays import DTYPES, ArrayFile

DB_FILE = "index.duckdb"  # videos, segments, meta
LOCK_FILE = ".lock"  # held by the single writer
WRITER_FILE = ".writer"  # who holds the lock: {"pid", "host", "since"}

LATENT_DTYPES = {"fp16": "f16", "int8": "i8"}  # option -> file suffix
FRAME_DTYPES = {"fp16": "f16", "fp32": "f32"}
SEGMENT_STORES = ("joint", "routing", "latents", "latent_scales")  # one row per segment (segments.vec_row)
FRAME_STORES = ("frame_times", "frame_joint")  # one row per sampled frame (segments.frame_row)
SEARCHABLE = ("joint", "routing")  # the segment stores with a FAISS cache

_STORES = "|".join(SEGMENT_STORES + FRAME_STORES)
_ARRAY_FILE = re.compile(rf"({_STORES})\.g(\d+)\.(f64|f32|f16|i8)")
_SEARCH_CACHE = re.compile(rf"({'|'.join(SEARCHABLE)})\.s(\d+)\.faiss")
_TMP_FILE = re.compile(  # what write_atomic and index creation write before renaming
    rf"({re.escape(DB_FILE)}|{re.escape(WRITER_FILE)}|({_STORES})\.[gs]\d+\.(f64|f32|f16|i8|faiss))\.tmp-\d+(\.wal)?"
)


def array_files(
    root: Path, dims: dict[str, int] | None, generation: int, latent_dtype: str, frame_dtype: str
) -> dict[str, ArrayFile]:
    """Store name -> its array file in `generation`, for an index with `dims` (None: no segment yet, no files)."""
    if dims is None:
        return {}
    d = dims["d_joint"]
    specs: dict[str, tuple[str, tuple[int, ...]]] = {
        "joint": ("f32", (d,)),
        "frame_times": ("f64", ()),
        "frame_joint": (FRAME_DTYPES[frame_dtype], (d,)),
    }
    if dims["d_route"]:
        specs["routing"] = ("f32", (dims["d_route"],))
    if dims["latent_len"]:
        suffix = LATENT_DTYPES[latent_dtype]
        specs["latents"] = (suffix, (dims["latent_len"], dims["d_lat"]))
        if suffix == "i8":
            specs["latent_scales"] = ("f32", (dims["latent_len"],))
    return {
        name: ArrayFile(root / f"{name}.g{generation}.{suffix}", DTYPES[suffix], shape)
        for name, (suffix, shape) in specs.items()
    }


def search_cache_path(root: Path, store: str, seq: int) -> Path:
    """The FAISS file that caches the search index of `store` ('joint' | 'routing') for commit `seq`."""
    return root / f"{store}.s{seq}.faiss"


def search_cache_seq(name: str) -> int | None:
    """The commit a FAISS cache file name is for; None if `name` is not one."""
    m = _SEARCH_CACHE.fullmatch(name)
    return int(m.group(2)) if m else None


def is_leftover(name: str, live_arrays: set[str], seq: int) -> bool:
    """A file a crashed or earlier writer left: an array file of another generation, a search cache of
    another commit, or a temporary file."""
    if _ARRAY_FILE.fullmatch(name):
        return name not in live_arrays
    cache_seq = search_cache_seq(name)
    if cache_seq is not None:
        return cache_seq != seq
    return bool(_TMP_FILE.fullmatch(name))
