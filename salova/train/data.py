"""Training data: 1-FPS frames and segments of each sample, decoded on the fly, with its router labels.

Records are read by ``salova.train.records`` (re-exported here). Segments come from the data's scenes when
present, else from the same scene detection and splitting as ``salova index`` (``segment_frames``).
Unreadable media is skipped while decoding (``Skipped``), never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from salova.errors import SalovaError, TrainingDataError
from salova.train.records import (
    FirstExchange,
    ReadReport,
    RouterQuery,
    Sample,
    Scene,
    parse_record,
    parse_scenes,
    read_samples,
    router_labels,
    sample_labels,
)

__all__ = [
    "Example", "ReadReport", "RouterQuery", "Sample", "SampledVideo", "Scene", "Skipped", "TrainingSet",
    "assign_scenes", "collate", "detected_segments", "fit_frame", "load_image", "parse_record", "parse_scenes",
    "read_samples", "router_labels", "sample_frames", "sample_labels",
]


# ---------------------------------------------------------------------------------------- frames
@dataclass
class SampledVideo:
    """1-FPS frames of one video and its scene cuts, from one decode pass."""

    frames: np.ndarray  # [f, h, w, 3] uint8 RGB (already fitted to the encoder's input size if asked)
    times_s: np.ndarray  # [f] float, presentation time of each frame
    frame_index: np.ndarray  # [f] int, frame number in the video
    cuts: list[int]  # scene starts (frame numbers), as `salova index` finds them
    end_frame: int  # one past the last decoded frame
    fps: float  # nominal frame rate


def sample_frames(
    path: str | Path, fps: float = 1.0, *, backend: str = "auto", fit: tuple[int, bool] | None = None
) -> SampledVideo:
    """Decode ``path`` once with ``VideoScanner`` (the index's decoder): frames at ``fps`` and scene cuts.

    ``fit=(size, crop)`` shrinks every frame right away (see ``fit_frame``) so memory stays small for
    long, high-resolution videos. Raises ``VideoOpenError`` for unreadable files.
    """
    from salova.video import SampledFrame, SceneCut, VideoScanner

    frames, times, index, cuts = [], [], [], []
    scanner = VideoScanner(path, sample_fps=fps, backend=backend)
    for event in scanner:
        if isinstance(event, SampledFrame):
            frames.append(fit_frame(event.rgb, *fit) if fit else event.rgb)
            times.append(event.time_s)
            index.append(event.frame_index)
        elif isinstance(event, SceneCut):
            cuts.append(event.frame_index)
    result = scanner.result
    return SampledVideo(
        frames=np.stack(frames), times_s=np.asarray(times, dtype=np.float64),
        frame_index=np.asarray(index, dtype=np.int64), cuts=cuts, end_frame=result.end_frame,
        fps=scanner.info.fps,
    )


def fit_frame(rgb: np.ndarray, size: int, crop: bool) -> np.ndarray:
    """Shrink an RGB frame [H, W, 3] to what the encoder's preprocessing resizes it to anyway.

    Same resampling as ``VisionTextEncoder.pixel_values`` (bicubic + antialias, shortest side -> size
    for CLIP; bilinear + antialias to size x size for SigLIP), so its own resize becomes an identity
    and the encoder sees the pixels the index sees, up to uint8 rounding.
    """
    h, w = rgb.shape[:2]
    if crop:
        scale = size / min(h, w)
        if scale >= 1:
            return rgb
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        mode = "bicubic"
    else:
        if h <= size and w <= size:
            return rgb
        nh = nw = size
        mode = "bilinear"
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()  # [1, 3, H, W]
    x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False, antialias=True)
    return x[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def load_image(path: Path, fit: tuple[int, bool] | None = None) -> np.ndarray:
    """An image file as a one-frame video [1, h, w, 3] uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = np.array(im.convert("RGB"))  # writable copy
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise TrainingDataError(f"{path.name}: cannot read image ({exc})") from None
    return (fit_frame(rgb, *fit) if fit else rgb)[None]


def assign_scenes(video: SampledVideo, scenes: tuple[Scene, ...]) -> list[np.ndarray]:
    """Frame positions of each annotated scene; a scene shorter than the sampling step gets its nearest frame."""
    t, idx = video.times_s, video.frame_index
    out = []
    for s in scenes:
        if s.start_s is not None:
            lo, hi, axis = s.start_s, s.end_s, t
        else:
            lo, hi, axis = float(s.start_frame), float(s.end_frame), idx.astype(np.float64)
        sel = np.nonzero((axis >= lo) & (axis < hi))[0]
        if len(sel) == 0:
            sel = np.array([int(np.argmin(np.abs(axis - (lo + hi) / 2)))])
        out.append(sel)
    return out


def detected_segments(video: SampledVideo, max_segment_s: float) -> list[np.ndarray]:
    """Frame positions per segment, cut exactly as ``salova index`` cuts them (``salova.video.segments``)."""
    from salova.video import segment_frames

    out = [rows for _, rows in segment_frames(video.cuts, video.end_frame, video.fps, max_segment_s,
                                               video.frame_index)]
    return out or [np.arange(len(video.frame_index))]  # defensive: every frame in one segment



# ---------------------------------------------------------------------------------------- dataset
@dataclass
class Example(FirstExchange):
    """A decoded training sample, what the training forward consumes."""

    id: str
    pairs: list[tuple[str, str]]  # (question, answer) exchanges; the LM trains on one per step
    queries: list[str]  # SceneWalk descriptions (router queries, pairs[i] answers queries[i]); []: one question
    labels: list[list[bool] | None]  # per query (one row for a one-question sample); None: unknown labels
    frames: torch.Tensor | None  # [f, h, w, 3] uint8; None when the features are cached
    segment_of_frame: torch.Tensor | None  # [f] long, segment index of each frame (non-decreasing)
    num_segments: int


@dataclass
class Skipped:
    """A sample that could not be decoded, with the reason."""

    id: str
    reason: str


class TrainingSet(Dataset):
    """Decodes samples on the fly (in DataLoader workers): frames at ``fps``, segments, router labels."""

    def __init__(
        self, samples: list[Sample], *, fps: float = 1.0, max_segment_s: float = 60.0, backend: str = "auto",
        fit: tuple[int, bool] | None = None, v2t_threshold: float = 0.18, t2t_threshold: float = 0.8,
    ):
        self.samples = samples
        self.fps, self.max_segment_s, self.backend, self.fit = fps, max_segment_s, backend, fit
        self.thresholds = (v2t_threshold, t2t_threshold)
        self.cached: set[str] = set()  # ids whose features the training forward keeps; no decode needed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Example | Skipped:
        s = self.samples[i]
        if s.id in self.cached:
            return self.example(s, None, None, 0)
        try:
            return self.decode(s)
        except (SalovaError, OSError, ValueError) as exc:  # VideoOpenError, TrainingDataError, I/O
            return Skipped(s.id, f"{s.where}: {exc}")

    def example(self, s: Sample, frames, segment_of_frame, num_segments: int) -> Example:
        return Example(s.id, list(s.pairs), [q.text for q in s.queries], sample_labels(s, *self.thresholds),
                       frames, segment_of_frame, num_segments)

    def decode(self, s: Sample) -> Example:
        if s.kind == "image":
            frames = load_image(s.media, self.fit)
            return self.example(s, torch.from_numpy(frames), torch.zeros(1, dtype=torch.long), 1)
        video = sample_frames(s.media, self.fps, backend=self.backend, fit=self.fit)
        if s.scenes is not None:
            groups = assign_scenes(video, s.scenes)
        else:
            groups = detected_segments(video, self.max_segment_s)
        # Frames grouped by segment, segments in data order (a frame in two overlapping scenes is in both).
        order = np.concatenate(groups)
        seg = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
        frames = torch.from_numpy(np.ascontiguousarray(video.frames[order]))
        return self.example(s, frames, torch.from_numpy(seg).long(), len(groups))


def collate(batch: list) -> list:
    """Variable-length videos: the micro-batch stays a list (module level so workers can pickle it)."""
    return batch
