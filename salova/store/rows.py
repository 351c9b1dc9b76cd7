"""From segments to the rows the array files hold: checks, L2 normalisation, latent storage dtype.

N: segments of one video, F: frames sampled at 1 FPS over them, d: joint dim, L: latents per segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from salova.store.arrays import dequantize_int8, quantize_int8
from salova.store.records import SegmentData, VideoRecord, VideoRows


class LazyRows:
    """Rows produced one at a time from per-segment sources (``convert(source) -> row``)."""

    def __init__(self, sources: Sequence, convert: Callable[[np.ndarray], np.ndarray]):
        self.sources, self.convert = sources, convert

    def __len__(self) -> int:
        return len(self.sources)

    def __iter__(self):
        return (self.convert(x) for x in self.sources)

    @property
    def nbytes(self) -> int:
        return len(self.sources) * self.convert(self.sources[0]).nbytes if len(self.sources) else 0


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def frame_starts(first: int, counts: np.ndarray) -> np.ndarray:
    """First frame row of each segment when the segments' frames are stored back to back from `first`."""
    counts = np.asarray(counts, dtype=np.int64)
    return first + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def latent_rows(latents: Sequence[np.ndarray], latent_dtype: str) -> dict[str, LazyRows]:
    """N segments' latents [L x d_lat] -> rows of the latent store(s) in `latent_dtype` ('fp16' | 'int8').

    Lazy: each segment is converted when it is written, so a commit never holds the whole video's
    latents in memory (they may be memory-mapped from the indexer's spill file).
    """
    if latent_dtype == "int8":
        return {"latents": LazyRows(latents, lambda x: quantize_int8(x)[0]),
                "latent_scales": LazyRows(latents, lambda x: quantize_int8(x)[1])}  # fmt: skip
    return {"latents": LazyRows(latents, lambda x: np.asarray(x, dtype=np.float16))}


def video_rows(record: VideoRecord, segments: Sequence[SegmentData], latent_dtype: str) -> VideoRows:
    """One video's segments as rows to append; raises ValueError on inconsistent segments."""
    segs = list(segments)
    if [s.idx for s in segs] != list(range(len(segs))):
        raise ValueError(f"{record.path}: segments must have idx 0..N-1 in order")
    if not segs:
        return VideoRows(record, {}, {}, None)
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
        "joint": l2_normalise(joint),
        "frame_times": np.concatenate(frame_times),
        "frame_joint": l2_normalise(np.concatenate(frame_joint)),
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
        rows.update(latent_rows([s.latents for s in segs], latent_dtype))
    columns = {
        "idx": np.arange(len(segs), dtype=np.int32),
        "start_s": np.array([s.start_s for s in segs], dtype=np.float64),
        "end_s": np.array([s.end_s for s in segs], dtype=np.float64),
        "start_frame": np.array([s.start_frame for s in segs], dtype=np.int64),
        "end_frame": np.array([s.end_frame for s in segs], dtype=np.int64),
        "frame_count": np.array([len(t) for t in frame_times], dtype=np.int32),
    }
    return VideoRows(record, columns, rows, dims)


def with_latent_dtype(video: VideoRows, latent_dtype: str) -> VideoRows:
    """`video` with its latents in `latent_dtype` (unchanged when they already are; other rows are cast by
    the array files as they are written)."""
    latents = video.rows.get("latents")
    if latents is None or (latents.dtype == np.int8) == (latent_dtype == "int8"):
        return video
    if latents.dtype == np.int8:  # [N x L x d_lat] int8 with scales [N x L] -> float32
        latents = dequantize_int8(latents, video.rows["latent_scales"])
    rows = {k: v for k, v in video.rows.items() if k not in ("latents", "latent_scales")}
    rows.update(latent_rows(np.asarray(latents, dtype=np.float32), latent_dtype))
    return replace(video, rows=rows)
