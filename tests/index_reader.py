"""Reading an index the way docs/index-schema.md tells users to: plain DuckDB SQL and raw numpy arrays.

Tests that check what salova computed read the stored values through this module, not through salova's own
store code, so that a store bug cannot hide behind itself. ``IndexStore`` is imported here once for the tests
that need a real writer (the store is moving to ``salova/store/``: this is the one line to update).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from salova.store.store import IndexStore  # noqa: F401  (re-exported: the one import of the store)

# docs/index-schema.md: "raw little-endian C-order rows with no header"
EXT_DTYPES = {"f32": "<f4", "f16": "<f2", "f64": "<f8", "i8": "i1"}
SETTING_EXT = {"fp16": "f16", "fp32": "f32", "int8": "i8"}


@dataclass(frozen=True)
class RawSegment:
    idx: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    vec_row: int
    frame_row: int
    frame_count: int


class RawIndex:
    """One read-only look at an index directory: ``meta``, ``videos``, ``segments`` and the array files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        con = duckdb.connect(str(self.root / "index.duckdb"), read_only=True)
        try:
            self.meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            self.videos = {
                path: (vid, status)
                for vid, path, status in con.execute("SELECT id, path, status FROM videos").fetchall()
            }
            rows = con.execute(
                "SELECT v.path, s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame, s.vec_row, s.frame_row, "
                "s.frame_count FROM segments s JOIN videos v ON v.id = s.video_id ORDER BY v.path, s.idx"
            ).fetchall()
        finally:
            con.close()
        self._segments: dict[str, list[RawSegment]] = {}
        for path, *rest in rows:
            self._segments.setdefault(path, []).append(RawSegment(*rest))

    def segments(self, path: str | Path) -> list[RawSegment]:
        return self._segments.get(str(Path(path).resolve()), [])

    @property
    def paths(self) -> list[str]:
        return sorted(self._segments)

    def _int(self, key: str) -> int:
        return int(self.meta[key])

    def _array(self, stem: str, ext: str, rows: int, *shape: int) -> np.ndarray:
        path = self.root / f"{stem}.g{self.meta['generation']}.{ext}"
        return np.memmap(path, dtype=EXT_DTYPES[ext], mode="r", shape=(rows, *shape))

    def joint(self) -> np.ndarray:
        """[seg_rows x d_joint] float32."""
        return self._array("joint", "f32", self._int("seg_rows"), self._int("d_joint"))

    def routing(self) -> np.ndarray:
        """[seg_rows x d_route] float32."""
        return self._array("routing", "f32", self._int("seg_rows"), self._int("d_route"))

    def latents(self) -> np.ndarray:
        """[seg_rows x L x d_lat], as stored (float16 or int8)."""
        ext = SETTING_EXT[self.meta["latent_dtype"]]
        return self._array("latents", ext, self._int("seg_rows"), self._int("latent_len"), self._int("d_lat"))

    def frame_times(self) -> np.ndarray:
        """[frame_rows] float64 seconds."""
        return self._array("frame_times", "f64", self._int("frame_rows"))

    def frame_joint(self) -> np.ndarray:
        """[frame_rows x d_joint], float16 or float32 (meta ``frame_dtype``)."""
        ext = SETTING_EXT[self.meta["frame_dtype"]]
        return self._array("frame_joint", ext, self._int("frame_rows"), self._int("d_joint"))

    def segment_frames(self, seg: RawSegment) -> tuple[np.ndarray, np.ndarray]:
        """(times [f], joint [f x d_joint] float32) of one segment's 1-FPS frames."""
        rows = slice(seg.frame_row, seg.frame_row + seg.frame_count)
        return np.array(self.frame_times()[rows]), np.array(self.frame_joint()[rows], np.float32)


def committed_videos(index: str | Path) -> int | None:
    """How many videos the index has committed as indexed; None while it cannot be read (not created yet, or a
    writer is inside its brief commit)."""
    db = Path(index) / "index.duckdb"
    if not db.is_file():
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        return int(con.execute("SELECT count(*) FROM videos WHERE status = 'indexed'").fetchone()[0])
    except duckdb.Error:
        return None
    finally:
        con.close()
