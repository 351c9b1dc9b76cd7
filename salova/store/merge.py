"""Combining shard indexes into one, through the stores' public API (`export_video` / `import_videos`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from salova.errors import FingerprintMismatchError, IndexStoreError
from salova.store.records import MergeSummary, VideoRecord, VideoRows
from salova.store.store import IndexStore

BATCH_BYTES = 256 << 20  # array bytes copied per commit
BATCH_VIDEOS = 256  # videos copied per commit


def merge_indexes(
    shards: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, lock_timeout: float = 10.0
) -> MergeSummary:
    """Combine shard indexes built with the same model into `out` (created if missing).

    A path present in several shards (or already in `out`) keeps its newest copy: latest `indexed_at`,
    then latest `mtime_ns`, then the later shard in the list (a copy already in `out` wins ties).
    """
    out_root = Path(out).expanduser().absolute()
    roots = [Path(s).expanduser().absolute() for s in shards]
    if not roots:
        raise IndexStoreError("nothing to merge: give at least one shard index")
    if any(r.resolve() == out_root.resolve() for r in roots):
        raise IndexStoreError(f"cannot merge {out_root} into itself; choose another output directory")
    sources: list[IndexStore] = []
    try:
        for r in roots:
            sources.append(IndexStore.open(r))
        first = sources[0]
        for src in sources[1:]:
            if src.fingerprint != first.fingerprint:
                raise FingerprintMismatchError(
                    f"shard {src.root} was built with {src.fingerprint.describe()} but shard {first.root} "
                    f"with {first.fingerprint.describe()}; merge only shards built with the same model"
                )
        best: dict[str, tuple[tuple, IndexStore, VideoRecord]] = {}  # path -> (newness, shard, record)
        superseded = 0
        for src in sources:
            for rec in src.videos():
                key = (rec.indexed_at, rec.mtime_ns)
                if rec.path in best:
                    superseded += 1
                    if key < best[rec.path][0]:
                        continue
                best[rec.path] = (key, src, rec)
        n_videos = n_segments = 0
        with IndexStore.open(
            out_root, writable=True, create=True, fingerprint=first.fingerprint, lock_timeout=lock_timeout,
            latent_dtype=first.latent_dtype, frame_dtype=first.frame_dtype,
        ) as dst:  # fmt: skip
            batch: list[VideoRows] = []
            batch_bytes = 0
            for path in sorted(best):
                key, src, rec = best[path]
                have = dst.get_video(path)
                if have is not None:
                    superseded += 1
                    if (have.indexed_at, have.mtime_ns) >= key:
                        continue
                video = src.export_video(rec.id)
                batch.append(video)
                batch_bytes += sum(a.nbytes for a in video.rows.values())
                n_videos += 1
                n_segments += len(video.columns.get("idx", ()))
                if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_VIDEOS:
                    dst.import_videos(batch)
                    batch, batch_bytes = [], 0
            if batch:
                dst.import_videos(batch)
    except ValueError as e:
        raise IndexStoreError(f"cannot merge into {out_root}: {e}") from e
    finally:
        for src in sources:
            src.close()
    return MergeSummary(out_root, len(sources), n_videos, n_segments, superseded)
