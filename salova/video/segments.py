"""Scenes -> segments: the one rule, used by indexing (streaming, scene by scene) and by training (whole video).

1. A scene longer than ``max_segment_s`` is split into the fewest equal parts (lengths differ by at most one
   frame) of at most ``floor(max_segment_s * fps)`` frames each (``split_scene``).
2. A part that holds no sampled (1-FPS) frame cannot be encoded: its frames join the next segment that has one;
   trailing parts without a sample extend the last segment (``SegmentCutter``).

Frame indices are those of the decoded video; times are ``frame / fps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Segment:
    """Frames ``[start_frame, end_frame)`` of a video; times are ``frame / fps``."""

    index: int
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _max_frames(fps: float, max_segment_s: float) -> float:
    if fps <= 0:
        raise ValueError(f"fps must be > 0, not {fps}")
    if not max_segment_s > 0:
        raise ValueError(f"max_segment_s must be > 0, not {max_segment_s}")
    max_frames = math.inf if math.isinf(max_segment_s) else math.floor(max_segment_s * fps + 1e-9)
    if max_frames < 1:
        raise ValueError(f"max_segment_s={max_segment_s} is shorter than one frame at {fps} fps")
    return max_frames


def split_scene(start: int, end: int, fps: float, max_segment_s: float) -> list[tuple[int, int]]:
    """Rule 1: frame ranges ``[a, b)`` of the scene ``[start, end)``, each at most ``max_segment_s`` long."""
    max_frames = _max_frames(fps, max_segment_s)
    length = end - start
    if length <= 0:
        return []
    parts = 1 if length <= max_frames else math.ceil(length / max_frames)
    edges = [start + round(i * length / parts) for i in range(parts + 1)]  # equal to within one frame
    return list(zip(edges, edges[1:], strict=False))


def split_segments(cuts: list[int], num_frames: int, fps: float, max_segment_s: float) -> list[Segment]:
    """Rule 1 over a whole video of ``num_frames`` frames with scene ``cuts`` (first frames of scenes).

    Scenes are ``[0, c1), [c1, c2), ..., [ck, num_frames)``; cuts outside ``(0, num_frames)`` are ignored.
    ``max_segment_s`` may be ``math.inf`` (no splitting).
    """
    _max_frames(fps, max_segment_s)
    if num_frames <= 0:
        return []
    bounds = [0, *sorted({c for c in cuts if 0 < c < num_frames}), num_frames]
    ranges = [r for a, b in zip(bounds, bounds[1:], strict=False) for r in split_scene(a, b, fps, max_segment_s)]
    return [Segment(i, a, b, a / fps, b / fps) for i, (a, b) in enumerate(ranges)]


class SegmentCutter:
    """Rules 1 and 2, streaming: scenes go in as they close, segments with their sampled frames come out.

    ``close_scene(end, frame_index)`` takes the scene that ends at frame ``end`` (it starts where the previous
    one ended) and the indices of the sampled frames that fall in it; it returns ``(segment, rows)`` pairs,
    ``rows`` the positions in ``frame_index`` of the segment's frames. ``finish(end)`` closes the last scene
    and returns the new end frame of the last segment when trailing frames without a sample extend it.
    """

    def __init__(self, fps: float, max_segment_s: float):
        _max_frames(fps, max_segment_s)
        self.fps, self.max_segment_s = fps, max_segment_s
        self.scene_start = 0  # first frame of the scene being built
        self.emitted = 0  # segments handed out so far (their indices)
        self._carry: int | None = None  # first frame of parts without a sample, waiting for the next segment

    def close_scene(self, end: int, frame_index: np.ndarray) -> list[tuple[Segment, np.ndarray]]:
        start, self.scene_start = self.scene_start, max(self.scene_start, end)
        frame_index = np.asarray(frame_index, dtype=np.int64)
        out = []
        for a, b in split_scene(start, end, self.fps, self.max_segment_s):
            rows = np.nonzero((frame_index >= a) & (frame_index < b))[0]
            if len(rows) == 0:  # rule 2: no sampled frame; these frames join the next segment
                if self._carry is None:
                    self._carry = a
                continue
            if self._carry is not None:
                a, self._carry = self._carry, None
            out.append((Segment(self.emitted, a, b, a / self.fps, b / self.fps), rows))
            self.emitted += 1
        return out

    def finish(self, end: int, frame_index: np.ndarray) -> tuple[list[tuple[Segment, np.ndarray]], int | None]:
        """Close the last scene ``[scene_start, end)``; also returns the last segment's new end frame, if any."""
        out = self.close_scene(end, frame_index)
        extend_to = None
        if self._carry is not None and self.emitted:
            extend_to, self._carry = max(end, self.scene_start), None
        return out, extend_to


def segment_frames(
    cuts: list[int], num_frames: int, fps: float, max_segment_s: float, frame_index: np.ndarray
) -> list[tuple[Segment, np.ndarray]]:
    """Rules 1 and 2 over a whole video: ``(segment, rows)`` pairs, ``rows`` positions in ``frame_index``."""
    cutter = SegmentCutter(fps, max_segment_s)
    frame_index = np.asarray(frame_index, dtype=np.int64)
    if num_frames <= 0:
        return []
    out: list[tuple[Segment, np.ndarray]] = []
    for cut in sorted({c for c in cuts if 0 < c < num_frames}):
        out += cutter.close_scene(cut, frame_index)
    last, extend_to = cutter.finish(num_frames, frame_index)
    out += last
    if extend_to is not None and out:
        seg, rows = out[-1]
        out[-1] = (replace(seg, end_frame=extend_to, end_s=extend_to / fps), rows)
    return out
