"""Keeping an index in step with a library over months: moved files, failed files, status and removal.

A file moved or renamed inside the library keeps its entry: ``Relocator`` recognises it by size and
content hash among the entries whose files are gone, and re-points the entry (no decoding, no model work).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from salova.pipeline.files import content_hash, full_hash
from salova.pipeline.outcome import FileOutcome
from salova.store.store import IndexStore, VideoRecord


class Relocator:
    """Finds, for a path the index does not know, an indexed entry of the same content whose file is gone."""

    def __init__(self, store: IndexStore, verify: bool = False):
        self.store = store
        self.verify = verify  # confirm a match by hashing the whole file (the entry's full_hash)
        self._gone: dict[tuple[int, str], list[VideoRecord]] = {}
        for rec in store.videos("indexed"):
            if not Path(rec.path).exists():
                self._gone.setdefault((rec.size, rec.content_hash), []).append(rec)

    def relocate(self, path: Path) -> FileOutcome | None:
        """Move a matching entry to ``path`` and say so; None when ``path`` is known or nothing matches."""
        if not self._gone or self.store.get_video(path) is not None:
            return None
        t0 = time.perf_counter()
        try:
            st = path.stat()
            candidates = self._gone.get((st.st_size, content_hash(path, st.st_size)))
            if not candidates:
                return None
            rec = candidates[0]
            if self.verify and rec.full_hash and rec.full_hash != full_hash(path):
                return None  # same sampled bytes, other content: index it as a new file
        except OSError:
            return None  # the indexer reports unreadable files
        candidates.pop(0)
        self.store.move_video(rec.path, path, st.st_size, st.st_mtime_ns)
        return FileOutcome(str(path), "moved", rec.num_segments, time.perf_counter() - t0, moved_from=rec.path)


def known_failure(store: IndexStore, path: Path, retry: bool) -> FileOutcome | None:
    """The recorded failure of a file that has not changed since (same size and mtime), unless ``retry``:
    a file that failed once fails again, and some fail only after decoding for minutes. None: index it."""
    rec = store.get_video(path)
    if retry or rec is None or rec.status != "failed":
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if (rec.size, rec.mtime_ns) != (st.st_size, st.st_mtime_ns):
        return None
    return FileOutcome(str(path), "failed", 0, 0.0, rec.error)


def library_status(index_dir: Path) -> dict:
    """What an index holds: videos, hours, segments, failures with reasons, damaged files, size, models, last run."""
    with IndexStore.open(index_dir) as store:
        stats = store.stats()
        videos = store.videos()
        fp = store.fingerprint
    indexed = [v for v in videos if v.status == "indexed"]
    times = [v.indexed_at for v in videos if v.indexed_at is not None]
    return {
        "index": stats["root"],
        "videos": len(indexed),
        "hours": round(sum(v.duration_s or 0.0 for v in indexed) / 3600, 3),
        "segments": stats["segments"],
        "failed": len(videos) - len(indexed),
        "failures": [{"path": v.path, "error": v.error} for v in videos if v.status == "failed"],
        "damaged": [{"path": v.path, "warning": v.warning} for v in indexed if v.warning],
        "missing": [v.path for v in videos if not Path(v.path).exists()],
        "bytes": sum(stats["bytes"].values()),
        "models": {"encoder": fp.encoder, "checkpoint": fp.checkpoint, "digest": fp.digest},
        "latent_dtype": stats["latent_dtype"],
        "last_run": max(times).isoformat(timespec="seconds") + "Z" if times else None,
    }


def remove_entries(index_dir: Path, paths: list[str | Path], lock_timeout: float = 10.0) -> tuple[list[str], list[str]]:
    """Forget the entries of ``paths`` (files, or folders: every entry under them), whether or not the files
    still exist. Returns (removed paths, arguments that matched no entry)."""
    with IndexStore.open(index_dir, writable=True, lock_timeout=lock_timeout) as store:
        known = [v.path for v in store.videos()]
        removed: list[str] = []
        unmatched: list[str] = []
        for raw in paths:
            target = os.path.abspath(os.path.expanduser(os.fspath(raw)))
            hits = [p for p in known if p == target or p.startswith(target.rstrip(os.sep) + os.sep)]
            if not hits and Path(target).exists():  # a symlinked path: the index holds the resolved one
                resolved = str(Path(target).resolve())
                hits = [p for p in known if p == resolved or p.startswith(resolved + os.sep)]
            if hits:
                removed.extend(hits)
            else:
                unmatched.append(str(raw))
        removed = sorted(set(removed))
        if removed:
            store.remove_videos(removed)
    return removed, unmatched
