"""The persistent index of a video library: one directory holding a DuckDB file, arrays and FAISS caches.

Layout of an index directory (every file and column is documented in docs/index-schema.md):

    index.duckdb                 videos, segments, meta; each change is one transaction (the commit point)
    joint.g<G>.f32               [rows x d_joint]       segment joint-space embeddings, row = segments.vec_row
    routing.g<G>.f32             [rows x d_route]       routing tokens (trained checkpoint only)
    latents.g<G>.f16 | .i8       [rows x L x d_lat]     connector latents (trained checkpoint only)
    latent_scales.g<G>.f32       [rows x L]             int8 scales (latent_dtype 'int8' only)
    frame_times.g<G>.f64         [frames]               1-FPS frame times, rows segments.frame_row ..
    frame_joint.g<G>.f16 | .f32  [frames x d_joint]     per-frame joint-space embeddings
    joint.s<S>.faiss, routing.s<S>.faiss                search caches for commit S, rebuilt when missing
    .lock, .writer               the writer's lock and its holder

Crash safety: array files are append-only; a change writes and fsyncs its rows past the committed ones
first, then commits one DuckDB transaction that points at them (and records the new row counts). A crash
before the commit leaves only bytes past the committed counts, which the next writer truncates. `compact`
writes a new generation G+1 of the array files and switches to it in one transaction. FAISS files are
derived caches named by commit number, so a stale one is never used.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import faiss
import numpy as np
from filelock import FileLock, Timeout

from salova.errors import FingerprintMismatchError, IndexLockedError, IndexStoreError
from salova.index.arrays import DTYPES, ArrayFile, dequantize_int8, fsync_dir, quantize_int8, write_atomic
from salova.index.records import (
    MergeSummary,
    ModelFingerprint,
    SegmentData,
    SegmentRecord,
    VideoRecord,
    default_index_dir,
)
from salova.index.schema import (
    DB_FILE,
    DDL,
    INSERT_SEGMENTS,
    INSERT_VIDEO,
    SCHEMA_VERSION,
    SEGMENT_COLUMNS,
    UPSERT_META,
    VIDEO_COLUMNS,
    connect,
)

__all__ = [
    "IndexStore",
    "MergeSummary",
    "ModelFingerprint",
    "SegmentData",
    "SegmentRecord",
    "VideoRecord",
    "default_index_dir",
]

log = logging.getLogger("salova.index")

LATENT_DTYPES = {"fp16": "f16", "int8": "i8"}  # option -> file suffix
FRAME_DTYPES = {"fp16": "f16", "fp32": "f32"}
SEGMENT_STORES = ("joint", "routing", "latents", "latent_scales")  # one row per segment (vec_row)
FRAME_STORES = ("frame_times", "frame_joint")  # one row per sampled frame (frame_row)
DIM_KEYS = ("d_joint", "d_route", "latent_len", "d_lat")

_ARRAY_FILE = re.compile(r"(joint|routing|latents|latent_scales|frame_times|frame_joint)\.g(\d+)\.(f64|f32|f16|i8)")
_FAISS_FILE = re.compile(r"(joint|routing)\.s(\d+)\.faiss")
_TMP_FILE = re.compile(
    r"(index\.duckdb|\.writer|(joint|routing|latents|latent_scales|frame_times|frame_joint)\.[gs]\d+\."
    r"(f64|f32|f16|i8|faiss))\.tmp-\d+(\.wal)?"
)


@dataclass
class _Segments:
    """The segments of one video as column arrays, in idx order."""

    idx: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    start_frame: np.ndarray
    end_frame: np.ndarray
    vec_row: np.ndarray  # row in the segment stores
    frame_row: np.ndarray  # first row in the frame stores
    frame_count: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)

    def frame_rows(self) -> np.ndarray:
        """Every frame row of the video, in order: [F_total]."""
        if not len(self.idx):
            return np.empty(0, dtype=np.int64)
        return np.concatenate([np.arange(r, r + c) for r, c in zip(self.frame_row, self.frame_count, strict=True)])


@dataclass
class _Write:
    """One video about to be committed: its record (id assigned at commit), segment columns, rows to append."""

    record: VideoRecord
    columns: dict[str, np.ndarray]  # idx, start_s, end_s, start_frame, end_frame, frame_count
    rows: dict[str, np.ndarray]  # array store name -> rows to append
    dims: dict[str, int] | None  # None: no segments


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back if the body (or the commit) fails."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


class _LazyRows:
    """Rows produced one at a time from per-segment sources (``convert(source) -> row``)."""

    def __init__(self, sources: Sequence, convert):
        self.sources, self.convert = sources, convert

    def __len__(self) -> int:
        return len(self.sources)

    def __iter__(self):
        return (self.convert(x) for x in self.sources)

    @property
    def nbytes(self) -> int:
        return len(self.sources) * self.convert(self.sources[0]).nbytes if len(self.sources) else 0


def _norm_path(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.fspath(path))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def _frame_starts(first: int, counts: np.ndarray) -> np.ndarray:
    """First frame row of each segment when the segments' frames are stored back to back from `first`."""
    counts = np.asarray(counts, dtype=np.int64)
    return first + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _rows_slice(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """arr[rows], as a view of the memory map when the rows are contiguous."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        return arr[int(rows[0]) : int(rows[-1]) + 1]
    return arr[rows]


class IndexStore:
    """A video-library index directory, opened read-only (a snapshot) or by its single writer.

    Readers take a consistent snapshot at `open` (call `refresh` to see later commits) and never wait for
    a writer beyond the few milliseconds of one commit. One writer at a time holds `<root>/.lock`; a
    second waits up to `lock_timeout` seconds, then fails with `IndexLockedError`. Not thread-safe.
    """

    AUTO_COMPACT_MIN_BYTES = 16 << 20  # `close` compacts when garbage exceeds both this and the live data
    MERGE_BATCH_BYTES = 256 << 20  # rows copied per merge transaction

    def __init__(self, root: Path, *, writable: bool, lock_timeout: float):
        """Use `IndexStore.open`."""
        self.root = root
        self.writable = writable
        self._lock_timeout = lock_timeout
        # A reader waits for one commit; a writer waits for readers' snapshots, patiently.
        self._db_timeout = max(lock_timeout, 60.0) if writable else lock_timeout
        self._lock: FileLock | None = None
        self._meta: dict[str, str | None] = {}
        self._videos: dict[str, VideoRecord] = {}  # path -> record
        self._by_id: dict[int, VideoRecord] = {}
        self._segs: dict[int, _Segments] = {}  # video id -> its segments (indexed videos only)
        self._files: dict[str, ArrayFile] = {}
        self._search: dict[str, tuple[int, tuple | None]] = {}  # kind -> (seq, (index, rows, vids, idxs))
        self._closed = False
        self.fingerprint: ModelFingerprint

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
            lock = FileLock(str(self.root / ".lock"), timeout=self._lock_timeout)
            try:
                lock.acquire()
            except Timeout:
                raise IndexLockedError(
                    f"index at {self.root} is being written by {self._holder()}; wait for it to finish "
                    "or use another --index"
                ) from None
            self._lock = lock
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": _utcnow().isoformat()}
            write_atomic(self.root / ".writer", json.dumps(holder).encode())
        except OSError as e:
            raise self._os_error(e) from e
        if not (self.root / DB_FILE).is_file():
            if fingerprint is None:
                raise ValueError("creating an index needs the model fingerprint")
            self._create_db(fingerprint, latent_dtype, frame_dtype)
        self._load()
        self._check_fingerprint(fingerprint)
        self._recover()

    def _holder(self) -> str:
        try:
            info = json.loads((self.root / ".writer").read_text())
            return f"pid {int(info['pid'])} on {info.get('host', '?')} (since {info.get('since', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _create_db(self, fingerprint: ModelFingerprint, latent_dtype: str, frame_dtype: str) -> None:
        """Build the database under a temporary name and rename it into place: it appears complete or not at all."""
        tmp = self.root / f"{DB_FILE}.tmp-{os.getpid()}"
        meta: dict[str, str | None] = {
            "schema_version": str(SCHEMA_VERSION),
            "fingerprint": fingerprint.to_json(),
            "created_at": _utcnow().isoformat(),
            "latent_dtype": latent_dtype,
            "frame_dtype": frame_dtype,
            "generation": "0",
            "seq": "0",
            "seg_rows": "0",
            "frame_rows": "0",
            "next_video_id": "1",
            **dict.fromkeys(DIM_KEYS),
        }
        try:
            for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
                stale.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp))
            try:
                for statement in DDL:
                    con.execute(statement)
                con.executemany(UPSERT_META, list(meta.items()))
            finally:
                con.close()
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.root / DB_FILE)
            fsync_dir(self.root)
        except (OSError, duckdb.Error) as e:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise self._store_error(e) from e

    def _load(self) -> None:
        """Read meta, videos and segments in one database hold, and map the array files inside it too."""
        for f in self._files.values():
            f.close()
        self._files = {}
        with connect(self.root / DB_FILE, read_only=not self.writable, timeout=self._db_timeout) as con:
            try:
                meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
                videos = con.execute(f"SELECT {VIDEO_COLUMNS} FROM videos").fetchall()
                segs = con.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY video_id, idx").fetchnumpy()
            except duckdb.Error as e:
                raise IndexStoreError(
                    f"{self.root / DB_FILE} is not a salova index ({str(e).splitlines()[0]}); use another --index"
                ) from e
            version = int(meta.get("schema_version") or 0)
            if version > SCHEMA_VERSION:
                raise IndexStoreError(
                    f"index at {self.root} has schema version {version}, newer than this salova supports "
                    f"({SCHEMA_VERSION}); upgrade salova"
                )
            try:
                self.fingerprint = ModelFingerprint.from_json(meta.get("fingerprint") or "")
            except ValueError as e:
                raise IndexStoreError(f"index at {self.root} has no valid model fingerprint; rebuild it") from e
            self._meta = meta
            self._videos, self._by_id, self._segs = {}, {}, {}
            for row in videos:
                rec = VideoRecord(*row)
                self._videos[rec.path] = rec
                self._by_id[rec.id] = rec
            vid = segs["video_id"]
            if len(vid):
                starts = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1]])
                ends = np.r_[starts[1:], len(vid)]
                for a, b in zip(starts, ends, strict=True):
                    cols = {k: v[a:b] for k, v in segs.items() if k != "video_id"}
                    self._segs[int(vid[a])] = _Segments(**cols)
            self._files = self._make_files(self._dims(), self.generation)
            for name, f in self._files.items():
                f.view(self._committed_rows(name))
        self._search = {}

    def _check_fingerprint(self, fingerprint: ModelFingerprint | None) -> None:
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise FingerprintMismatchError(
                f"index at {self.root} was built with {self.fingerprint.describe()}, not "
                f"{fingerprint.describe()}; use --index OTHER_DIR, or rebuild: delete the index and run "
                "`salova index` again"
            )

    def _recover(self) -> None:
        """Writer open: remove what a crashed writer left (torn tails, old generations, temp files)."""
        keep = {f.path.name for f in self._files.values()}
        removed = False
        try:
            for p in self.root.iterdir():
                name = p.name
                stray = (
                    (_ARRAY_FILE.fullmatch(name) and name not in keep)
                    or ((m := _FAISS_FILE.fullmatch(name)) and int(m.group(2)) != self.seq)
                    or _TMP_FILE.fullmatch(name)
                )
                if stray and not p.is_dir():
                    log.info("removing leftover index file %s", name)
                    p.unlink()
                    removed = True
            if removed:
                fsync_dir(self.root)
            for name, f in self._files.items():
                f.recover(self._committed_rows(name))
        except OSError as e:
            raise self._os_error(e) from e

    def refresh(self) -> None:
        """Readers: take a new snapshot to see commits made since `open`. Writers always see their own."""
        if not self.writable:
            self._load()

    def close(self) -> None:
        """Writers: compact if mostly garbage, save the search caches, release the lock."""
        if self._closed:
            return
        try:
            if self._lock is not None and self._meta:
                if self._should_compact():
                    try:
                        self.compact()
                    except IndexStoreError as e:
                        log.warning("skipped compacting the index: %s", e)
                self._save_search_caches()
        finally:
            self._closed = True
            for f in self._files.values():
                f.close()
            self._search = {}
            if self._lock is not None:
                with suppress(OSError):
                    (self.root / ".writer").unlink(missing_ok=True)
                self._lock.release()
                self._lock = None

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- meta

    def _int(self, key: str) -> int | None:
        value = self._meta.get(key)
        return None if value is None else int(value)

    @property
    def seq(self) -> int:
        """Number of commits so far; names the FAISS caches."""
        return self._int("seq") or 0

    @property
    def generation(self) -> int:
        """Generation of the array files (bumped by `compact`)."""
        return self._int("generation") or 0

    @property
    def latent_dtype(self) -> str:
        return self._meta.get("latent_dtype") or "fp16"

    @property
    def frame_dtype(self) -> str:
        return self._meta.get("frame_dtype") or "fp16"

    def _dims(self) -> dict[str, int] | None:
        """d_joint, d_route, latent_len, d_lat (0: not stored); None until the first segment is stored."""
        if self._meta.get("d_joint") is None:
            return None
        return {k: self._int(k) or 0 for k in DIM_KEYS}

    def _make_files(self, dims: dict[str, int] | None, generation: int) -> dict[str, ArrayFile]:
        if dims is None:
            return {}
        d = dims["d_joint"]
        specs: dict[str, tuple[str, tuple[int, ...]]] = {
            "joint": ("f32", (d,)),
            "frame_times": ("f64", ()),
            "frame_joint": (FRAME_DTYPES[self.frame_dtype], (d,)),
        }
        if dims["d_route"]:
            specs["routing"] = ("f32", (dims["d_route"],))
        if dims["latent_len"]:
            suffix = LATENT_DTYPES[self.latent_dtype]
            specs["latents"] = (suffix, (dims["latent_len"], dims["d_lat"]))
            if suffix == "i8":
                specs["latent_scales"] = ("f32", (dims["latent_len"],))
        return {
            name: ArrayFile(self.root / f"{name}.g{generation}.{suffix}", DTYPES[suffix], shape)
            for name, (suffix, shape) in specs.items()
        }

    def _committed_rows(self, store: str) -> int:
        return (self._int("seg_rows") if store in SEGMENT_STORES else self._int("frame_rows")) or 0

    # ------------------------------------------------------------------------------------------- read

    def get_video(self, path: str | os.PathLike[str]) -> VideoRecord | None:
        return self._videos.get(_norm_path(path))

    def videos(self, status: str | None = None) -> list[VideoRecord]:
        """Every video (or those with `status` 'indexed' / 'failed'), by path."""
        return sorted((v for v in self._videos.values() if status is None or v.status == status), key=lambda v: v.path)

    def segments(self, video_id: int) -> list[SegmentRecord]:
        s = self._segs.get(video_id)
        if s is None:
            return []
        return [
            SegmentRecord(video_id, int(i), float(a), float(b), int(fa), int(fb))
            for i, a, b, fa, fb in zip(s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame, strict=True)
        ]

    def _segment_rows(self, store: str, video_id: int) -> np.ndarray | None:
        """The video's rows of a segment store ([N x ...] view when possible); None if the index has none."""
        f = self._files.get(store)
        if f is None:
            return None
        s = self._segs.get(video_id)
        rows = s.vec_row if s is not None else np.empty(0, dtype=np.int64)
        return _rows_slice(f.view(self._committed_rows(store)), rows)

    def load_joint(self, video_id: int) -> np.ndarray:
        """Joint-space segment embeddings: [N x d_joint] float32 (L2-normalised)."""
        rows = self._segment_rows("joint", video_id)
        if rows is None:
            return np.empty((0, 0), dtype=np.float32)
        return rows

    def load_routing(self, video_id: int) -> np.ndarray | None:
        """Routing tokens: [N x d_route] float32, or None when the index stores none."""
        return self._segment_rows("routing", video_id)

    def load_latents(self, video_id: int) -> np.ndarray | None:
        """Connector latents: [N x L x d_lat], a float16 memory map ('fp16') or float32 ('int8'); None if absent."""
        q = self._segment_rows("latents", video_id)
        if q is None or self.latent_dtype == "fp16":
            return q
        scales = self._segment_rows("latent_scales", video_id)
        return dequantize_int8(q, scales)

    def load_frames(self, video_id: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segment: (frame times [F] float64 s, frame joint-space embeddings [F x d_joint] float32)."""
        s = self._segs.get(video_id)
        if s is None or "frame_times" not in self._files:
            return []
        times = self._files["frame_times"].view(self._committed_rows("frame_times"))
        joint = self._files["frame_joint"].view(self._committed_rows("frame_joint"))
        return [
            (np.array(times[r : r + c]), np.asarray(joint[r : r + c], dtype=np.float32))
            for r, c in zip(s.frame_row.tolist(), s.frame_count.tolist(), strict=True)
        ]

    def search_joint(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """Top-k segments of the library by cosine to `query` [d_joint]: (video_id, seg_idx, score), best first."""
        q = _l2_normalise(np.asarray(query, dtype=np.float32).reshape(1, -1))
        return self._search_store("joint", q, k)

    def search_routing(self, query: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        """Top-k segments by inner product of `query` [d_route] with the routing tokens, best first."""
        return self._search_store("routing", np.asarray(query, dtype=np.float32).reshape(1, -1), k)

    def _search_store(self, store: str, q: np.ndarray, k: int) -> list[tuple[int, int, float]]:
        entry = self._vector_index(store)
        if entry is None or k <= 0:
            return []
        index, rows, vids, idxs = entry
        if q.shape[1] != index.d:
            raise ValueError(f"query has {q.shape[1]} dims, the index's {store} vectors have {index.d}")
        scores, ids = index.search(q, min(k, index.ntotal))
        found = ids[0] >= 0
        pos = np.searchsorted(rows, ids[0][found])
        return [(int(vids[p]), int(idxs[p]), float(s)) for p, s in zip(pos, scores[0][found], strict=True)]

    def _live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Live segment rows in ascending order, with their video ids and segment indices."""
        if not self._segs:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        rows = np.concatenate([s.vec_row for s in self._segs.values()]).astype(np.int64)
        vids = np.concatenate([np.full(len(s), v, dtype=np.int64) for v, s in self._segs.items()])
        idxs = np.concatenate([s.idx for s in self._segs.values()]).astype(np.int64)
        order = np.argsort(rows, kind="stable")
        return rows[order], vids[order], idxs[order]

    def _vector_index(self, store: str) -> tuple | None:
        """(FAISS index over the live rows of `store`, rows, video ids, segment idxs), cached per commit."""
        cached = self._search.get(store)
        if cached is not None and cached[0] == self.seq:
            return cached[1]
        entry = None
        rows, vids, idxs = self._live()
        if store in self._files and len(rows):
            index = self._read_search_cache(store, rows)
            if index is None:
                vectors = np.ascontiguousarray(self._files[store].view(self._committed_rows(store))[rows])
                index = faiss.IndexIDMap(faiss.IndexFlatIP(vectors.shape[1]))
                index.add_with_ids(vectors, rows)
            entry = (index, rows, vids, idxs)
        self._search[store] = (self.seq, entry)
        return entry

    def _cache_path(self, store: str) -> Path:
        return self.root / f"{store}.s{self.seq}.faiss"

    def _read_search_cache(self, store: str, rows: np.ndarray) -> faiss.Index | None:
        """The saved FAISS file for this commit if it is one and holds exactly the live rows, else None."""
        path = self._cache_path(store)
        try:
            if path.is_symlink() or not path.is_file():
                return None
            index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
            ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
        except (OSError, RuntimeError, AttributeError) as e:
            log.warning("ignoring unreadable search cache %s: %s", path.name, e)
            return None
        if index.ntotal != len(rows) or not np.array_equal(ids, rows):
            log.warning("ignoring search cache %s: it does not match the committed segments", path.name)
            return None
        return index

    def _save_search_caches(self) -> None:
        for store in ("joint", "routing"):
            path = self._cache_path(store)
            if path.is_file():
                continue
            entry = self._vector_index(store)
            if entry is None:
                continue
            try:
                write_atomic(path, faiss.serialize_index(entry[0]).tobytes())
            except OSError as e:
                log.warning("could not save search cache %s: %s", path.name, e)
        for p in self.root.iterdir():
            m = _FAISS_FILE.fullmatch(p.name)
            if m and int(m.group(2)) != self.seq:
                with suppress(OSError):
                    p.unlink()

    def stats(self) -> dict:
        """Counts and on-disk bytes: videos, failed, segments, frames, garbage rows, bytes per file kind."""
        live = sum(len(s) for s in self._segs.values())

        def size(p: Path) -> int:
            try:
                return p.stat().st_size
            except OSError:
                return 0

        nbytes = {"duckdb": size(self.root / DB_FILE)}
        nbytes.update({name: size(f.path) for name, f in self._files.items()})
        nbytes["faiss"] = sum(size(p) for p in self.root.glob("*.faiss"))
        return {
            "root": str(self.root),
            "fingerprint": self.fingerprint.describe(),
            "videos": sum(v.status == "indexed" for v in self._videos.values()),
            "failed": sum(v.status == "failed" for v in self._videos.values()),
            "segments": live,
            "frames": int(sum(int(s.frame_count.sum()) for s in self._segs.values())),
            "garbage_rows": (self._int("seg_rows") or 0) - live,
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
    ) -> int:
        """Store one video and its segments, atomically replacing whatever the index had for `path`.

        Returns the new video id (ids are never reused). Segments must carry idx 0..N-1 in order.
        """
        record = VideoRecord(
            id=0, path=_norm_path(path), size=int(size), mtime_ns=int(mtime_ns), content_hash=content_hash,
            duration_s=duration_s, fps=fps, num_frames=num_frames, status="indexed", error=None, shard=shard,
            num_segments=len(segments),
        )  # fmt: skip
        return self._commit([self._encode(record, segments)], [])[0]

    def put_failure(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        content_hash: str,
        error: str,
        *,
        shard: str | None = None,
    ) -> int:
        """Record that `path` could not be indexed. Any previous entry for the path, segments included, is
        replaced: it described the file as it was, which is not what is there now."""
        record = VideoRecord(
            id=0, path=_norm_path(path), size=int(size), mtime_ns=int(mtime_ns), content_hash=content_hash,
            duration_s=None, fps=None, num_frames=None, status="failed", error=error, shard=shard,
        )  # fmt: skip
        return self._commit([_Write(record, {}, {}, None)], [])[0]

    def remove_videos(self, paths: Iterable[str | os.PathLike[str]]) -> int:
        """Forget these videos (e.g. files deleted from the library); returns how many were in the index."""
        present = sorted({p for p in map(_norm_path, paths) if p in self._videos})
        if present:
            self._commit([], present)
        return len(present)

    def _require_writer(self) -> None:
        if self._lock is None or self._closed:
            raise IndexStoreError(f"index at {self.root} is open read-only; open it with writable=True")

    def _encode(self, record: VideoRecord, segments: Sequence[SegmentData]) -> _Write:
        segs = list(segments)
        if [s.idx for s in segs] != list(range(len(segs))):
            raise ValueError(f"{record.path}: segments must have idx 0..N-1 in order")
        if not segs:
            return _Write(record, {}, {}, None)
        first = segs[0]
        has_routing, has_latents = first.routing is not None, first.latents is not None
        if any((s.routing is not None) != has_routing or (s.latents is not None) != has_latents for s in segs):
            raise ValueError(f"{record.path}: either every segment has routing/latents or none has")
        joint = np.stack([np.asarray(s.joint, dtype=np.float32).reshape(-1) for s in segs])  # [N x d]
        if not np.isfinite(joint).all():
            raise ValueError(f"{record.path}: joint embeddings contain NaN or inf")
        d = joint.shape[1]
        frame_times, frame_joint = [], []
        for s in segs:
            t = np.asarray(s.frame_times, dtype=np.float64).reshape(-1)
            fj = np.asarray(s.frame_joint, dtype=np.float32).reshape(len(t), d)  # [F x d]
            frame_times.append(t)
            frame_joint.append(fj)
        rows: dict[str, np.ndarray] = {
            "joint": _l2_normalise(joint),
            "frame_times": np.concatenate(frame_times),
            "frame_joint": _l2_normalise(np.concatenate(frame_joint)),
        }
        dims = {"d_joint": d, "d_route": 0, "latent_len": 0, "d_lat": 0}
        if has_routing:
            rows["routing"] = np.stack([np.asarray(s.routing, dtype=np.float32).reshape(-1) for s in segs])
            dims["d_route"] = rows["routing"].shape[1]
        if has_latents:
            shapes = {np.shape(s.latents) for s in segs}
            if len(shapes) != 1 or len(next(iter(shapes))) != 2:
                raise ValueError(f"{record.path}: latents must be [L x d_lat] per segment")
            dims["latent_len"], dims["d_lat"] = next(iter(shapes))
            rows.update(self._encode_latents([s.latents for s in segs]))
        columns = {
            "idx": np.arange(len(segs), dtype=np.int32),
            "start_s": np.array([s.start_s for s in segs], dtype=np.float64),
            "end_s": np.array([s.end_s for s in segs], dtype=np.float64),
            "start_frame": np.array([s.start_frame for s in segs], dtype=np.int64),
            "end_frame": np.array([s.end_frame for s in segs], dtype=np.int64),
            "frame_count": np.array([len(t) for t in frame_times], dtype=np.int32),
        }
        return _Write(record, columns, rows, dims)

    def _encode_latents(self, latents: Sequence[np.ndarray]) -> dict[str, _LazyRows]:
        """N segments' latents [L x d_lat] -> rows of the latent store(s) in this index's latent dtype.

        Lazy: each segment is converted when it is written, so a commit never holds the whole video's
        latents in memory (they may be memory-mapped from the indexer's spill file).
        """
        if self.latent_dtype == "int8":
            return {"latents": _LazyRows(latents, lambda x: quantize_int8(x)[0]),
                    "latent_scales": _LazyRows(latents, lambda x: quantize_int8(x)[1])}
        return {"latents": _LazyRows(latents, lambda x: np.asarray(x, dtype=np.float16))}

    def _commit(self, writes: list[_Write], remove: list[str]) -> list[int]:
        """Append the writes' rows, fsync, then one transaction: the only way the index changes."""
        self._require_writer()
        latest = {w.record.path: w for w in writes}  # the last write of a path wins
        writes = list(latest.values())
        dims = self._dims()
        for w in writes:
            if w.dims is None:
                continue
            if dims is None:
                dims = w.dims
            elif w.dims != dims:
                raise ValueError(f"{w.record.path}: segment data has dims {w.dims}, the index has {dims}")
        new_dims = dims if self._dims() is None and dims is not None else None
        files = self._files if new_dims is None else self._make_files(new_dims, self.generation)

        seg0, frame0 = self._int("seg_rows") or 0, self._int("frame_rows") or 0
        seg_at, frame_at, plan = seg0, frame0, []
        for w in writes:
            plan.append((seg_at, frame_at))
            seg_at += len(w.columns.get("idx", ()))
            frame_at += int(w.columns["frame_count"].sum()) if w.columns else 0

        def undo() -> None:
            for name, f in files.items():
                with suppress(OSError):
                    f.truncate(seg0 if name in SEGMENT_STORES else frame0)
                if files is not self._files:
                    f.close()  # files of a first commit; the next writer open removes them

        try:
            for name, f in files.items():
                at = seg0 if name in SEGMENT_STORES else frame0
                for rows in (w.rows[name] for w in writes if name in w.rows):
                    if isinstance(rows, _LazyRows):  # one segment at a time
                        for i, row in enumerate(rows):
                            f.append(at + i, row[None])
                    else:
                        f.append(at, rows)
                    at += len(rows)
            for f in files.values():
                f.sync()
        except OSError as e:
            undo()
            raise self._os_error(e) from e

        now = _utcnow()
        next_id = self._int("next_video_id") or 1
        records = []
        for w in writes:
            records.append(replace(w.record, id=next_id, indexed_at=w.record.indexed_at or now))
            next_id += 1
        meta = {"seq": str(self.seq + 1), "seg_rows": str(seg_at), "frame_rows": str(frame_at),
                "next_video_id": str(next_id)}  # fmt: skip
        if new_dims is not None:
            meta.update({k: str(v) for k, v in new_dims.items()})
        gone = sorted(set(remove) | set(latest))
        committed = False
        try:
            with connect(self.root / DB_FILE, read_only=False, timeout=self._db_timeout) as con:
                with _transaction(con):
                    self._write_rows(con, gone, records, writes, plan)
                    con.executemany(UPSERT_META, list(meta.items()))
                committed = True
        except (duckdb.Error, OSError, IndexStoreError) as e:
            if not committed:
                undo()
                if isinstance(e, IndexStoreError):
                    raise
                raise self._store_error(e) from e
            log.warning("index commit is durable but closing the database failed: %s", e)
        except BaseException:
            if not committed:
                undo()
            raise

        for path in gone:
            old = self._videos.pop(path, None)
            if old is not None:
                self._by_id.pop(old.id, None)
                self._segs.pop(old.id, None)
        for rec, w, (s_first, f_first) in zip(records, writes, plan, strict=True):
            self._videos[rec.path] = rec
            self._by_id[rec.id] = rec
            if w.columns:
                n = len(w.columns["idx"])
                self._segs[rec.id] = _Segments(
                    idx=w.columns["idx"], start_s=w.columns["start_s"], end_s=w.columns["end_s"],
                    start_frame=w.columns["start_frame"], end_frame=w.columns["end_frame"],
                    vec_row=np.arange(s_first, s_first + n, dtype=np.int64),
                    frame_row=_frame_starts(f_first, w.columns["frame_count"]),
                    frame_count=w.columns["frame_count"],
                )  # fmt: skip
        self._meta.update(meta)
        self._files = files
        return [r.id for r in records]

    @staticmethod
    def _write_rows(
        con: duckdb.DuckDBPyConnection,
        gone: list[str],
        records: list[VideoRecord],
        writes: list[_Write],
        plan: list[tuple[int, int]],
    ) -> None:
        if gone:
            con.execute(
                "DELETE FROM segments WHERE video_id IN "
                "(SELECT id FROM videos WHERE path IN (SELECT UNNEST(?::TEXT[])))",
                [gone],
            )
            con.execute("DELETE FROM videos WHERE path IN (SELECT UNNEST(?::TEXT[]))", [gone])
        for rec, w, (s_first, f_first) in zip(records, writes, plan, strict=True):
            con.execute(
                INSERT_VIDEO,
                [rec.id, rec.path, rec.size, rec.mtime_ns, rec.content_hash, rec.duration_s, rec.fps,
                 rec.num_frames, rec.status, rec.error, rec.indexed_at, rec.shard, rec.num_segments],
            )  # fmt: skip
            if not w.columns:
                continue
            c = w.columns
            n = len(c["idx"])
            frame_rows = _frame_starts(f_first, c["frame_count"])
            con.execute(
                INSERT_SEGMENTS,
                [[rec.id] * n, c["idx"].tolist(), c["start_s"].tolist(), c["end_s"].tolist(),
                 c["start_frame"].tolist(), c["end_frame"].tolist(), list(range(s_first, s_first + n)),
                 frame_rows.tolist(), c["frame_count"].tolist()],
            )  # fmt: skip

    def _os_error(self, e: OSError) -> IndexStoreError:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return IndexStoreError(
                f"no space left on the device holding the index at {self.root}; free space and re-run "
                "(the index is unchanged)"
            )
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return IndexStoreError(
                f"cannot write to the index at {self.root} ({e.strerror}); make it writable or pass another "
                "--index (the index is unchanged)"
            )
        return IndexStoreError(f"could not write the index at {self.root}: {e} (the index is unchanged)")

    def _store_error(self, e: Exception) -> IndexStoreError:
        if isinstance(e, OSError):
            return self._os_error(e)
        msg = str(e)
        if "No space left" in msg:
            return self._os_error(OSError(errno.ENOSPC, "No space left on device"))
        if "Read-only file system" in msg or "Permission denied" in msg:
            return self._os_error(OSError(errno.EACCES, "read-only or permission denied"))
        first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
        return IndexStoreError(f"could not commit to the index at {self.root}: {first} (the index is unchanged)")

    # ------------------------------------------------------------------------------------ maintenance

    def _garbage_bytes(self) -> tuple[int, int]:
        """(bytes of rows no segment points at, bytes of live rows) over the array files."""
        live_segs = sum(len(s) for s in self._segs.values())
        live_frames = int(sum(int(s.frame_count.sum()) for s in self._segs.values()))
        garbage = live = 0
        for name, f in self._files.items():
            total = self._committed_rows(name)
            used = live_segs if name in SEGMENT_STORES else live_frames
            garbage += (total - used) * f.row_bytes
            live += used * f.row_bytes
        return garbage, live

    def _should_compact(self) -> bool:
        garbage, live = self._garbage_bytes()
        return garbage > live and garbage >= self.AUTO_COMPACT_MIN_BYTES

    def compact(self) -> None:
        """Rewrite the array files without the rows of replaced/removed videos (new generation, one commit)."""
        self._require_writer()
        dims = self._dims()
        if dims is None:
            return
        old = self._files
        old_views = {name: f.view(self._committed_rows(name)) for name, f in old.items()}
        new = self._make_files(dims, self.generation + 1)
        remap: dict[str, list[int]] = {"video_id": [], "idx": [], "vec_row": [], "frame_row": []}
        new_segs: dict[int, _Segments] = {}
        seg_at = frame_at = 0
        try:
            for vid in sorted(self._segs):
                s = self._segs[vid]
                n, frames = len(s), s.frame_rows()
                for name, f in new.items():
                    src = s.vec_row if name in SEGMENT_STORES else frames
                    f.append(seg_at if name in SEGMENT_STORES else frame_at, old_views[name][src])
                new_segs[vid] = replace(
                    s,
                    vec_row=np.arange(seg_at, seg_at + n, dtype=np.int64),
                    frame_row=_frame_starts(frame_at, s.frame_count),
                )
                remap["video_id"] += [vid] * n
                remap["idx"] += s.idx.tolist()
                remap["vec_row"] += new_segs[vid].vec_row.tolist()
                remap["frame_row"] += new_segs[vid].frame_row.tolist()
                seg_at, frame_at = seg_at + n, frame_at + len(frames)
            for f in new.values():
                f.sync()
            fsync_dir(self.root)
        except OSError as e:
            for f in new.values():
                f.close()
                with suppress(OSError):
                    f.path.unlink(missing_ok=True)
            raise self._os_error(e) from e

        meta = {"seq": str(self.seq + 1), "generation": str(self.generation + 1),
                "seg_rows": str(seg_at), "frame_rows": str(frame_at)}  # fmt: skip
        committed = False
        try:
            with connect(self.root / DB_FILE, read_only=False, timeout=self._db_timeout) as con:
                con.execute(
                    "CREATE TEMP TABLE remap AS SELECT UNNEST(?::BIGINT[]) AS video_id, "
                    "UNNEST(?::INTEGER[]) AS idx, UNNEST(?::BIGINT[]) AS vec_row, UNNEST(?::BIGINT[]) AS frame_row",
                    [remap["video_id"], remap["idx"], remap["vec_row"], remap["frame_row"]],
                )
                with _transaction(con):
                    con.execute(
                        "UPDATE segments SET vec_row = r.vec_row, frame_row = r.frame_row FROM remap r "
                        "WHERE segments.video_id = r.video_id AND segments.idx = r.idx"
                    )
                    con.executemany(UPSERT_META, list(meta.items()))
                committed = True
                # Still inside the hold: no reader can be between reading the generation and mapping its files.
                for f in old.values():
                    f.close()
                    with suppress(OSError):
                        f.path.unlink(missing_ok=True)
        except (duckdb.Error, OSError, IndexStoreError) as e:
            if not committed:
                for f in new.values():
                    f.close()
                    with suppress(OSError):
                        f.path.unlink(missing_ok=True)
                if isinstance(e, IndexStoreError):
                    raise
                raise self._store_error(e) from e
            log.warning("compaction is durable but closing the database failed: %s", e)
        self._meta.update(meta)
        self._segs = new_segs
        self._files = new
        self._search = {}

    # ------------------------------------------------------------------------------------------ merge

    def _export(self, rec: VideoRecord, dst: IndexStore) -> _Write:
        """This index's copy of one video, as a write for `dst` (raw rows when the storage dtypes agree)."""
        s = self._segs.get(rec.id)
        if s is None or not len(s):
            return _Write(replace(rec, id=0), {}, {}, None)
        dims = self._dims()
        rows: dict[str, np.ndarray] = {"joint": np.array(self.load_joint(rec.id))}
        if dims["d_route"]:
            rows["routing"] = np.array(self.load_routing(rec.id))
        if dims["latent_len"]:
            if self.latent_dtype == dst.latent_dtype:
                rows["latents"] = np.array(self._segment_rows("latents", rec.id))
                if self.latent_dtype == "int8":
                    rows["latent_scales"] = np.array(self._segment_rows("latent_scales", rec.id))
            else:
                rows.update(dst._encode_latents(np.asarray(self.load_latents(rec.id), dtype=np.float32)))
        frames = s.frame_rows()
        rows["frame_times"] = np.array(self._files["frame_times"].view(self._committed_rows("frame_times"))[frames])
        frame_joint = self._files["frame_joint"].view(self._committed_rows("frame_joint"))[frames]
        rows["frame_joint"] = np.asarray(frame_joint, dtype=DTYPES[FRAME_DTYPES[dst.frame_dtype]])
        columns = {
            "idx": s.idx, "start_s": s.start_s, "end_s": s.end_s, "start_frame": s.start_frame,
            "end_frame": s.end_frame, "frame_count": s.frame_count,
        }  # fmt: skip
        return _Write(replace(rec, id=0), columns, rows, dims)

    @staticmethod
    def merge(
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
            best: dict[str, tuple[tuple, IndexStore, VideoRecord]] = {}
            superseded = 0
            for src in sources:
                for rec in src._videos.values():
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
                batch: list[_Write] = []
                batch_bytes = 0
                for path in sorted(best):
                    key, src, rec = best[path]
                    have = dst._videos.get(path)
                    if have is not None:
                        superseded += 1
                        if (have.indexed_at, have.mtime_ns) >= key:
                            continue
                    write = src._export(rec, dst)
                    batch.append(write)
                    batch_bytes += sum(a.nbytes for a in write.rows.values())
                    n_videos += 1
                    n_segments += len(write.columns.get("idx", ()))
                    if batch_bytes >= IndexStore.MERGE_BATCH_BYTES or len(batch) >= 256:
                        dst._commit(batch, [])
                        batch, batch_bytes = [], 0
                if batch:
                    dst._commit(batch, [])
        except ValueError as e:
            raise IndexStoreError(f"cannot merge into {out_root}: {e}") from e
        finally:
            for src in sources:
                src.close()
        return MergeSummary(out_root, len(sources), n_videos, n_segments, superseded)
