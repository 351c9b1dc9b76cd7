"""One consistent view of an index: meta, videos, segments and the committed rows of its array files.

A snapshot is read in one database hold, and its array files are mapped inside that hold too: a
compaction deletes the previous generation inside its own hold, so a snapshot never sees a generation
whose files are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from salova.errors import IndexStoreError
from salova.store import schema
from salova.store.arrays import ArrayFile
from salova.store.layout import DB_FILE, SEGMENT_STORES, array_files
from salova.store.records import ModelFingerprint, VideoRecord
from salova.store.schema import DIM_KEYS, FORMAT_VERSION, SCHEMA_VERSION, SEGMENT_COLUMNS


@dataclass
class Segments:
    """The segments of one video as column arrays [N], in idx order."""

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
class Snapshot:
    """What an open store sees. A writer's snapshot is updated in place by each of its commits."""

    root: Path
    meta: dict[str, str | None]  # the meta table
    fingerprint: ModelFingerprint
    videos: dict[str, VideoRecord]  # path -> record
    by_id: dict[int, VideoRecord]
    segments: dict[int, Segments]  # video id -> its segments (indexed videos only)
    files: dict[str, ArrayFile]  # store name -> array file of the current generation
    missing_columns: list[str] = field(default_factory=list)  # `videos` columns an older index lacks

    def meta_int(self, key: str) -> int | None:
        value = self.meta.get(key)
        return None if value is None else int(value)

    @property
    def seq(self) -> int:
        return self.meta_int("seq") or 0

    @property
    def generation(self) -> int:
        return self.meta_int("generation") or 0

    @property
    def latent_dtype(self) -> str:
        return self.meta.get("latent_dtype") or "fp16"

    @property
    def frame_dtype(self) -> str:
        return self.meta.get("frame_dtype") or "fp16"

    def dims(self) -> dict[str, int] | None:
        """d_joint, d_route, latent_len, d_lat (0: not stored); None until the first segment is stored."""
        if self.meta.get("d_joint") is None:
            return None
        return {k: self.meta_int(k) or 0 for k in DIM_KEYS}

    def make_files(self, dims: dict[str, int] | None, generation: int) -> dict[str, ArrayFile]:
        return array_files(self.root, dims, generation, self.latent_dtype, self.frame_dtype)

    def committed_rows(self, store: str) -> int:
        return (self.meta_int("seg_rows") if store in SEGMENT_STORES else self.meta_int("frame_rows")) or 0

    def view(self, store: str) -> np.ndarray:
        """Read-only map of the committed rows of `store`: [rows x ...]."""
        return self.files[store].view(self.committed_rows(store))

    def segment_rows(self, store: str, video_id: int) -> np.ndarray | None:
        """The video's rows of a segment store ([N x ...] view when possible); None if the index has none."""
        if store not in self.files:
            return None
        s = self.segments.get(video_id)
        rows = s.vec_row if s is not None else np.empty(0, dtype=np.int64)
        arr = self.view(store)
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
            return arr[int(rows[0]) : int(rows[-1]) + 1]  # contiguous: a view of the map
        return arr[rows]

    def live_counts(self) -> tuple[int, int]:
        """(segments, frames) that videos point at; the rest of the committed rows are garbage."""
        return (sum(len(s) for s in self.segments.values()),
                int(sum(int(s.frame_count.sum()) for s in self.segments.values())))  # fmt: skip

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def read_snapshot(root: Path, *, read_only: bool, timeout: float) -> Snapshot:
    """Read meta, videos and segments in one database hold, and map the array files inside it too."""
    with schema.connect(root / DB_FILE, read_only=read_only, timeout=timeout) as con:
        try:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            videos, missing = schema.read_videos(con)
            segs = con.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY video_id, idx").fetchnumpy()
        except duckdb.Error as e:
            raise IndexStoreError(
                f"{root / DB_FILE} is not a salova index ({str(e).splitlines()[0]}); use another --index"
            ) from e
        _check_versions(root, meta)
        try:
            fingerprint = ModelFingerprint.from_json(meta.get("fingerprint") or "")
        except ValueError as e:
            raise IndexStoreError(f"index at {root} has no valid model fingerprint; rebuild it") from e
        snap = Snapshot(root, meta, fingerprint, {}, {}, {}, {}, missing_columns=missing)
        for row in videos:
            rec = VideoRecord(**row)
            snap.videos[rec.path] = rec
            snap.by_id[rec.id] = rec
        vid = segs["video_id"]
        if len(vid):
            starts = np.flatnonzero(np.r_[True, vid[1:] != vid[:-1]])
            ends = np.r_[starts[1:], len(vid)]
            for a, b in zip(starts, ends, strict=True):
                snap.segments[int(vid[a])] = Segments(**{k: v[a:b] for k, v in segs.items() if k != "video_id"})
        snap.files = snap.make_files(snap.dims(), snap.generation)
        for name in snap.files:
            snap.view(name)
    return snap


def _check_versions(root: Path, meta: dict[str, str | None]) -> None:
    """Refuse an index written by a newer salova; an index without 'format_version' predates it: 1."""
    for key, supported in (("schema_version", SCHEMA_VERSION), ("format_version", FORMAT_VERSION)):
        default = "1" if key == "format_version" else "0"
        try:
            version = int(meta.get(key) or default)
        except ValueError:
            raise IndexStoreError(f"index at {root} has an unreadable {key} {meta.get(key)!r}; rebuild it") from None
        if version > supported:
            raise IndexStoreError(
                f"index at {root} has {key.replace('_', ' ')} {version}, newer than this salova supports "
                f"({supported}); upgrade salova"
            )
