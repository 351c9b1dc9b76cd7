"""Bounded memory while indexing: encoded frames wait for their scene's end, latents for the video's commit.

Both keep the large arrays (patch features, connector latents) in temporary files, so RAM does not grow
with scene or video length.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from salova.video import SampledFrame


class FrameBuffer:
    """Encoded 1-FPS frames awaiting their scene's end.

    Patch features (the large part: p x d per frame) live in a temporary file and are read back one
    segment at a time, so RAM does not grow with scene or video length.
    """

    def __init__(self, keep_patches: bool):
        self.keep_patches = keep_patches
        self.index: list[int] = []
        self.times: list[float] = []
        self.joint: list[np.ndarray] = []
        self.cls: list[np.ndarray] = []
        self.joint_width = 0
        # closed by close(); a context manager cannot span the scan loop
        self._file = tempfile.TemporaryFile(prefix="salova-patches-") if keep_patches else None  # noqa: SIM115
        self._row_shape: tuple[int, ...] = ()
        self._start = 0  # file row of the first buffered frame
        self._rows = 0  # rows in the file

    def add(self, frames: list[SampledFrame], feats) -> None:
        self.index += [f.frame_index for f in frames]
        self.times += [f.time_s for f in frames]
        joint = feats.joint.float().cpu().numpy()
        self.joint_width = joint.shape[1]
        self.joint += list(joint)
        if self.keep_patches:
            self.cls += list(feats.cls.float().cpu().numpy())
            patches = np.ascontiguousarray(feats.patches.to(torch.float16).cpu().numpy())  # [b, p, d]
            self._row_shape = patches.shape[1:]
            os.pwrite(self._file.fileno(), patches.tobytes(), self._rows * patches[0].nbytes)
            self._rows += len(patches)

    def __len__(self) -> int:
        return len(self.index)

    def take_before(self, frame: int) -> dict:
        """Remove and return the buffered frames with frame_index < frame (patches stay on disk until
        ``release``; read them with ``read_patches``)."""
        n = sum(1 for i in self.index if i < frame)
        out = {
            "index": self.index[:n],
            "times": np.asarray(self.times[:n], dtype=np.float64),
            "joint": np.asarray(self.joint[:n], dtype=np.float32).reshape(n, self.joint_width),
            "first_row": self._start,
        }
        self.index, self.times, self.joint = self.index[n:], self.times[n:], self.joint[n:]
        if self.keep_patches:
            out["cls"] = np.asarray(self.cls[:n], dtype=np.float32)
            self.cls = self.cls[n:]
            self._start += n
        return out

    def read_patches(self, first: int, count: int) -> np.ndarray:
        """Rows first..first+count-1 of the patch file -> [count, p, d] float16."""
        row_bytes = int(np.prod(self._row_shape)) * 2
        data = os.pread(self._file.fileno(), count * row_bytes, first * row_bytes)
        return np.frombuffer(data, dtype=np.float16).reshape(count, *self._row_shape)

    def release(self) -> None:
        """Drop patch rows no buffered frame needs any more (all of them once the buffer is empty)."""
        if self.keep_patches and not self.index:
            self._file.truncate(0)
            self._start = self._rows = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class LatentSpill:
    """Connector latents of a video's finished segments, in a temporary file until the video's commit."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="salova-latents-")  # noqa: SIM115 (closed by close())
        self._shape: tuple[int, ...] = ()
        self._rows = 0

    def add(self, latents: np.ndarray) -> int:
        latents = np.ascontiguousarray(latents, dtype=np.float16)
        self._shape = latents.shape
        os.pwrite(self._file.fileno(), latents.tobytes(), self._rows * latents.nbytes)
        self._rows += 1
        return self._rows - 1

    def view(self) -> np.ndarray | None:
        """All rows as a read-only memory map [n, L, d] (file-backed: pages are not anonymous memory)."""
        if not self._rows:
            return None
        return np.memmap(self._file, dtype=np.float16, mode="r", shape=(self._rows, *self._shape))

    def close(self) -> None:
        self._file.close()
