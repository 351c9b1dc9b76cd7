"""Append-only files of fixed-shape rows, and the fsync / atomic-replace helpers the index relies on."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from salova.errors import IndexStoreError

log = logging.getLogger("salova.store")

# File suffix -> on-disk dtype (always little-endian).
DTYPES: dict[str, np.dtype] = {
    "f64": np.dtype("<f8"),
    "f32": np.dtype("<f4"),
    "f16": np.dtype("<f2"),
    "i8": np.dtype("i1"),
}


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | memoryview) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file, never a mix."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def quantize_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row: x [... x d] -> (q int8 [... x d], scale float32 [...]) with x ~= q * scale."""
    x = np.asarray(x, dtype=np.float32)
    scale = (np.abs(x).max(axis=-1) / 127.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)[..., None]
    q = np.clip(np.rint(x / safe), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float32) * np.asarray(scale, dtype=np.float32)[..., None]


class ArrayFile:
    """Rows of one dtype and shape, raw little-endian, no header: row r starts at byte r * row_bytes.

    Only the index writer writes, always past the committed rows and at explicit offsets, so a committed
    row is never rewritten; readers memory-map the committed prefix.
    """

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(n) for n in row_shape)
        self.row_bytes = self.dtype.itemsize * math.prod(self.row_shape)
        self._fd: int | None = None
        self._map: tuple[int, np.ndarray] | None = None  # (rows, read-only memmap of those rows)

    def recover(self, committed_rows: int) -> None:
        """Writer open: cut bytes past the committed rows (left by a crash); fail if committed bytes are gone."""
        need = committed_rows * self.row_bytes
        size = self.path.stat().st_size if self.path.exists() else 0
        if size < need:
            raise IndexStoreError(
                f"index file {self.path} is shorter than its committed rows, so the index is damaged; "
                "delete it and run `salova index` again"
            )
        if size > need:
            log.info("truncating %d uncommitted bytes from %s", size - need, self.path.name)
            with open(self.path, "r+b") as f:
                f.truncate(need)
                f.flush()
                os.fsync(f.fileno())

    def append(self, first_row: int, rows: np.ndarray) -> None:
        """Write `rows` [n x *row_shape] as rows first_row.. (not durable until `sync`)."""
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        if data.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {data.shape[1:]}, expected {self.row_shape}")
        if self._fd is None:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if created:
                fsync_dir(self.path.parent)
        view = memoryview(data).cast("B")
        offset = first_row * self.row_bytes
        while len(view):
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def truncate(self, rows: int) -> None:
        """Drop everything past `rows` (undo an append that was not committed)."""
        if self._fd is not None:
            os.ftruncate(self._fd, rows * self.row_bytes)

    def view(self, rows: int) -> np.ndarray:
        """Read-only memory map of the first `rows` rows: [rows x *row_shape]."""
        if self._map is not None and self._map[0] == rows:
            return self._map[1]
        if rows == 0:
            arr = np.empty((0, *self.row_shape), dtype=self.dtype)
        else:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = -1
            if size < rows * self.row_bytes:
                raise IndexStoreError(
                    f"index file {self.path} is missing or shorter than its committed rows, so the index is "
                    "damaged; delete it and run `salova index` again"
                )
            arr = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(rows, *self.row_shape))
        self._map = (rows, arr)
        return arr

    def close(self) -> None:
        self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
