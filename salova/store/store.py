"""`IndexStore`: an index directory opened by a reader (a snapshot) or by its single writer.

Reading: `open` takes a snapshot (snapshot.py); `load_*` read its memory-mapped rows, `search_*` its FAISS
indexes (search.py). Writing: `put_video`, `put_failure`, `remove_videos`, `import_videos` and `compact`
are each one two-phase commit (commit.py): rows appended and fsynced, then one DuckDB transaction. A
writer's open removes what a crashed writer left (uncommitted tails, old generations, temporary files).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path

import duckdb
import numpy as np
from filelock import FileLock, Timeout

from salova.errors import FingerprintMismatchError, IndexLockedError, IndexStoreError
from salova.store import commit, schema
from salova.store.arrays import dequantize_int8, write_atomic
from salova.store.layout import DB_FILE, FRAME_DTYPES, LATENT_DTYPES, LOCK_FILE, SEGMENT_STORES, WRITER_FILE
from salova.store.records import (
    MergeSummary,
    ModelFingerprint,
    SegmentData,
    SegmentRecord,
    VideoRecord,
    VideoRows,
    default_index_dir,
)
from salova.store.rows import l2_normalise, video_rows, with_latent_dtype
from salova.store.schema import create_database, new_index_meta
from salova.store.search import Hit, SegmentSearch
from salova.store.snapshot import Snapshot, read_snapshot

__all__ = [
    "IndexStore",
    "MergeSummary",
    "ModelFingerprint",
    "SegmentData",
    "SegmentRecord",
    "VideoRecord",
    "VideoRows",
    "default_index_dir",
]

log = logging.getLogger("salova.store")


def _norm_path(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


class IndexStore:
    """A video-library index directory, opened read-only (a snapshot) or by its single writer.

    Readers take a consistent snapshot at `open` (call `refresh` to see later commits) and never wait for
    a writer beyond the few milliseconds of one commit. One writer at a time holds `<root>/.lock`; a
    second waits up to `lock_timeout` seconds, then fails with `IndexLockedError`. Not thread-safe.
    """

    AUTO_COMPACT_MIN_BYTES = 16 << 20  # `close` compacts when garbage exceeds both this and the live data

    def __init__(self, root: Path, *, writable: bool, lock_timeout: float):
        """Use `IndexStore.open`."""
        self.root = root
        self.writable = writable
        self._lock_timeout = lock_timeout
        # A reader waits for one commit; a writer waits for readers' snapshots, patiently.
        self._db_timeout = max(lock_timeout, 60.0) if writable else lock_timeout
        self._lock: FileLock | None = None
        self._snap: Snapshot | None = None
        self._search = SegmentSearch()
        self._closed = False

    # ----------------------------------------------------------------------------------------------- open

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        writable: bool = False,
        fingerprint: ModelFingerprint | None = None,
        lock_timeout: float = 10.0,
        create: bool = False,
        latent_dtype: str = "fp16",
        frame_dtype: str = "fp16",
    ) -> IndexStore:
        """Open the index at `root`.

        writable: become its single writer (waits up to `lock_timeout` s for another one).
        fingerprint: the model about to be used; a different one raises FingerprintMismatchError.
        create: create the index (needs writable and fingerprint) when `root` holds none.
        latent_dtype ('fp16' | 'int8'), frame_dtype ('fp16' | 'fp32'): storage, fixed at creation.
        """
        root = Path(root).expanduser().absolute()
        if create and not writable:
            raise ValueError("create=True needs writable=True")
        if latent_dtype not in LATENT_DTYPES:
            raise ValueError(f"latent_dtype must be one of {sorted(LATENT_DTYPES)}, not {latent_dtype!r}")
        if frame_dtype not in FRAME_DTYPES:
            raise ValueError(f"frame_dtype must be one of {sorted(FRAME_DTYPES)}, not {frame_dtype!r}")
        if not (root / DB_FILE).is_file() and not create:
            raise IndexStoreError(f"no index at {root}; run `salova index PATH` first")
        store = cls(root, writable=writable, lock_timeout=lock_timeout)
        try:
            if writable:
                store._open_writer(fingerprint, latent_dtype, frame_dtype)
            else:
                store._load()
                store._check_fingerprint(fingerprint)
        except BaseException:
            store.close()
            raise
        return store

    def _open_writer(self, fingerprint: ModelFingerprint | None, latent_dtype: str, frame_dtype: str) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.root / LOCK_FILE), timeout=self._lock_timeout)
            try:
                lock.acquire()
            except Timeout:
                raise IndexLockedError(
                    f"index at {self.root} is being written by {self._holder()}; wait for it to finish "
                    "or use another --index"
                ) from None
            self._lock = lock
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": commit.utcnow().isoformat()}
            write_atomic(self.root / WRITER_FILE, json.dumps(holder).encode())
        except OSError as e:
            raise commit.os_error(self.root, e) from e
        if not (self.root / DB_FILE).is_file():
            if fingerprint is None:
                raise ValueError("creating an index needs the model fingerprint")
            self._create(fingerprint, latent_dtype, frame_dtype)
        self._load()
        self._check_fingerprint(fingerprint)
        if self._snap.missing_columns:  # an index from before those columns: add them (NULL in old rows)
            self._migrate()
        commit.recover(self._snap)

    def _migrate(self) -> None:
        try:
            with schema.connect(self.root / DB_FILE, read_only=False, timeout=self._db_timeout) as con:
                schema.add_missing_columns(con, self._snap.missing_columns)
        except duckdb.Error as e:
            raise commit.store_error(self.root, e) from e
        log.info("index at %s: added videos columns %s", self.root, ", ".join(self._snap.missing_columns))
        self._snap.missing_columns = []

    def _holder(self) -> str:
        try:
            info = json.loads((self.root / WRITER_FILE).read_text())
            return f"pid {int(info['pid'])} on {info.get('host', '?')} (since {info.get('since', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _create(self, fingerprint: ModelFingerprint, latent_dtype: str, frame_dtype: str) -> None:
        meta = new_index_meta(fingerprint.to_json(), commit.utcnow().isoformat(), latent_dtype, frame_dtype)
        try:
            create_database(self.root / DB_FILE, meta)
        except (OSError, duckdb.Error) as e:
            raise commit.store_error(self.root, e) from e

    def _load(self) -> None:
        if self._snap is not None:
            self._snap.close()
            self._snap = None
        self._snap = read_snapshot(self.root, read_only=not self.writable, timeout=self._db_timeout)
        self._search.clear()

    def _check_fingerprint(self, fingerprint: ModelFingerprint | None) -> None:
        if fingerprint is not None and not fingerprint.matches(self.fingerprint):
            raise FingerprintMismatchError(
                f"index at {self.root} was built with {self.fingerprint.describe()}, not "
                f"{fingerprint.describe()}; use --index OTHER_DIR, or rebuild: delete the index and run "
                "`salova index` again"
            )

    def refresh(self) -> None:
        """Readers: take a new snapshot to see commits made since `open`. Writers always see their own."""
        if not self.writable:
            self._load()

    def close(self) -> None:
        """Writers: compact if mostly garbage, save the search caches, release the lock."""
        if self._closed:
            return
        try:
            if self._lock is not None and self._snap is not None:
                if commit.garbage_exceeds(self._snap, self.AUTO_COMPACT_MIN_BYTES):
                    try:
                        self.compact()
                    except IndexStoreError as e:
                        log.warning("skipped compacting the index: %s", e)
                self._search.save_caches(self._snap)
        finally:
            self._closed = True
            if self._snap is not None:
                self._snap.close()
            self._search.clear()
            if self._lock is not None:
                with suppress(OSError):
                    (self.root / WRITER_FILE).unlink(missing_ok=True)
                self._lock.release()
                self._lock = None

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- read

    @property
    def fingerprint(self) -> ModelFingerprint:
        """The model that produced this index's vectors."""
        return self._snap.fingerprint

    @property
    def seq(self) -> int:
        """Number of commits so far; names the FAISS caches."""
        return self._snap.seq

    @property
    def generation(self) -> int:
        """Generation of the array files (bumped by `compact`)."""
        return self._snap.generation

    @property
    def latent_dtype(self) -> str:
        return self._snap.latent_dtype

    @property
    def frame_dtype(self) -> str:
        return self._snap.frame_dtype

    def get_video(self, path: str | os.PathLike[str]) -> VideoRecord | None:
        return self._snap.videos.get(_norm_path(path))

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        """Every video (or those with `status` 'indexed' / 'failed'), by path."""
        found = (v for v in self._snap.videos.values() if status is None or v.status == status)
        return sorted(found, key=lambda v: v.path)

    def segments(self, video_id: int) -> list[SegmentRecord]:
        s = self._snap.segments.get(video_id)
        if s is None:
            return []
        return [
            SegmentRecord(video_id, int(i), float(a), float(b), int(fa), int(fb))
            for i, a, b, fa, fb in zip(s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame, strict=True)
        ]

    def load_joint(self, video_id: int) -> np.ndarray:
        """Joint-space segment embeddings: [N x d_joint] float32 (L2-normalised)."""
        rows = self._snap.segment_rows("joint", video_id)
        if rows is None:
            return np.empty((0, 0), dtype=np.float32)
        return rows

    def load_routing(self, video_id: int) -> np.ndarray | None:
        """Routing tokens: [N x d_route] float32, or None when the index stores none."""
        return self._snap.segment_rows("routing", video_id)

    def load_latents(self, video_id: int) -> np.ndarray | None:
        """Connector latents: [N x L x d_lat], a float16 memory map ('fp16') or float32 ('int8'); None if absent."""
        q = self._snap.segment_rows("latents", video_id)
        if q is None or self.latent_dtype == "fp16":
            return q
        return dequantize_int8(q, self._snap.segment_rows("latent_scales", video_id))

    def load_frames(self, video_id: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segment: (frame times [F] float64 s, frame joint-space embeddings [F x d_joint] float32)."""
        s = self._snap.segments.get(video_id)
        if s is None or "frame_times" not in self._snap.files:
            return []
        times, joint = self._snap.view("frame_times"), self._snap.view("frame_joint")
        return [
            (np.array(times[r : r + c]), np.asarray(joint[r : r + c], dtype=np.float32))
            for r, c in zip(s.frame_row.tolist(), s.frame_count.tolist(), strict=True)
        ]

    def export_video(self, video_id: int) -> VideoRows:
        """A copy of everything stored for one video, in this index's storage dtypes, for `import_videos`."""
        snap = self._snap
        rec = snap.by_id[video_id]
        s = snap.segments.get(video_id)
        if s is None or not len(s):
            return VideoRows(rec, {}, {}, None)
        rows = {name: np.array(snap.segment_rows(name, video_id)) for name in snap.files if name in SEGMENT_STORES}
        frames = s.frame_rows()
        rows.update({name: np.array(snap.view(name)[frames]) for name in ("frame_times", "frame_joint")})
        columns = {"idx": s.idx, "start_s": s.start_s, "end_s": s.end_s, "start_frame": s.start_frame,
                   "end_frame": s.end_frame, "frame_count": s.frame_count}  # fmt: skip
        return VideoRows(rec, columns, rows, snap.dims())

    def search_joint(self, query: np.ndarray, k: int, exhaustive: bool = False) -> list[Hit]:
        """Top-k segments of the library by cosine to `query` [d_joint]: (video_id, seg_idx, score), best first.

        ``exhaustive``: scan every segment even where the index is approximate (a large library)."""
        q = l2_normalise(np.asarray(query, dtype=np.float32).reshape(1, -1))
        return self._search.search(self._snap, "joint", q, k, exhaustive=exhaustive)

    def search_routing(self, query: np.ndarray, k: int) -> list[Hit]:
        """Top-k segments by inner product of `query` [d_route] with the routing tokens, best first."""
        return self._search.search(self._snap, "routing", np.asarray(query, dtype=np.float32).reshape(1, -1), k)

    def stats(self) -> dict:
        """Counts and on-disk bytes: videos, failed, segments, frames, garbage rows, bytes per file kind."""
        snap = self._snap
        live, frames = snap.live_counts()

        def size(p: Path) -> int:
            try:
                return p.stat().st_size
            except OSError:
                return 0

        nbytes = {"duckdb": size(self.root / DB_FILE)}
        nbytes.update({name: size(f.path) for name, f in snap.files.items()})
        nbytes["faiss"] = sum(size(p) for p in self.root.glob("*.faiss"))
        return {
            "root": str(self.root),
            "fingerprint": self.fingerprint.describe(),
            "videos": sum(v.status == "indexed" for v in snap.videos.values()),
            "failed": sum(v.status == "failed" for v in snap.videos.values()),
            "segments": live,
            "frames": frames,
            "garbage_rows": (snap.meta_int("seg_rows") or 0) - live,
            "seq": self.seq,
            "generation": self.generation,
            "latent_dtype": self.latent_dtype,
            "frame_dtype": self.frame_dtype,
            "bytes": nbytes,
        }

    # ------------------------------------------------------------------------------------------ write

    def put_video(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        content_hash: str,
        duration_s: float | None,
        fps: float | None,
        num_frames: int | None,
        segments: Sequence[SegmentData],
        *,
        shard: str | None = None,
        warning: str | None = None,
        gaps: str | None = None,
        settings: str | None = None,
        full_hash: str | None = None,
    ) -> int:
        """Store one video and its segments, atomically replacing whatever the index had for `path`.

        Returns the new video id (ids are never reused). Segments must carry idx 0..N-1 in order.
        """
        self._require_writer()
        record = VideoRecord(
            id=0, path=_norm_path(path), size=int(size), mtime_ns=int(mtime_ns), content_hash=content_hash,
            duration_s=duration_s, fps=fps, num_frames=num_frames, status="indexed", error=None, shard=shard,
            num_segments=len(segments), warning=warning, gaps=gaps, settings=settings, full_hash=full_hash,
        )  # fmt: skip
        return self._commit([video_rows(record, segments, self.latent_dtype)], [])[0]

    def put_failure(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        content_hash: str,
        error: str,
        *,
        shard: str | None = None,
        settings: str | None = None,
    ) -> int:
        """Record that `path` could not be indexed. Any previous entry for the path, segments included, is
        replaced: it described the file as it was, which is not what is there now."""
        record = VideoRecord(
            id=0, path=_norm_path(path), size=int(size), mtime_ns=int(mtime_ns), content_hash=content_hash,
            duration_s=None, fps=None, num_frames=None, status="failed", error=error, shard=shard, settings=settings,
        )  # fmt: skip
        return self._commit([VideoRows(record, {}, {}, None)], [])[0]

    def remove_videos(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Forget these videos (e.g. files deleted from the library); returns how many were in the index."""
        self._require_writer()
        present = sorted({p for p in map(_norm_path, paths) if p in self._snap.videos})
        if present:
            self._commit([], present)
        return len(present)

    def move_video(self, old: str | os.PathLike[str], new: str | os.PathLike[str], size: int, mtime_ns: int) -> None:
        """Re-point the entry of `old` at `new` (the same content, moved or renamed): no model work, one commit."""
        self._require_writer()
        old, new = _norm_path(old), _norm_path(new)
        if old not in self._snap.videos or new in self._snap.videos:
            raise ValueError(f"cannot move {old} to {new}: need an entry at the first and none at the second")
        commit.move_videos(self._snap, [(old, new, int(size), int(mtime_ns))], timeout=self._db_timeout)

    def import_videos(self, videos: Sequence[VideoRows]) -> list[int]:
        """Store videos exported from another index with the same model, in one commit; each replaces any
        video of its path and keeps its `indexed_at` and `shard`. Returns their new ids, in order."""
        return self._commit([with_latent_dtype(v, self.latent_dtype) for v in videos], [])

    def compact(self) -> None:
        """Rewrite the array files without the rows of replaced/removed videos (new generation, one commit)."""
        self._require_writer()
        commit.compact(self._snap, timeout=self._db_timeout)
        self._search.clear()

    def _commit(self, writes: list[VideoRows], remove: list[str]) -> list[int]:
        self._require_writer()
        return commit.commit_videos(self._snap, writes, remove, timeout=self._db_timeout)

    def _require_writer(self) -> None:
        if self._lock is None or self._closed:
            raise IndexStoreError(f"index at {self.root} is open read-only; open it with writable=True")
