"""Training data: LLaVA-style JSON and SceneWalk JSONL readers, router labels, 1-FPS frames.

Both formats become ``Sample``s. A sample is one video (or image: a one-frame video with one segment),
one question and one answer (the first human/gpt turn pair), and optionally its scenes with relevance
scores. Segments come from the data's scenes when present, else from the same scene detection and
splitting as ``salova index`` (``VideoScanner`` cuts + ``split_segments``).

Bad records never stop training: malformed lines and samples whose media is missing are skipped and
counted while reading (``ReadReport``), unreadable media while decoding (``Skipped``). A data file that
is missing, or has no usable sample at all, is a ``TrainingDataError``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from salova.errors import SalovaError, TrainingDataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_MEDIA_TOKEN = re.compile(r"\s*<(image|video)>\s*")
_EXAMPLES_LOGGED = 5  # per reason, so a bad million-line file does not flood the log


@dataclass(frozen=True)
class Scene:
    """One annotated segment: times (seconds) or frame numbers, and optional relevance scores."""

    start_s: float | None = None
    end_s: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    v2t: float | None = None  # video-to-text similarity of the segment and the sample's text
    t2t: float | None = None  # text-to-text similarity of the segment's caption and the sample's text


@dataclass(frozen=True)
class Sample:
    id: str
    media: Path  # absolute path of the video or image
    kind: str  # "video" or "image"
    question: str  # first human turn, <image>/<video> tokens removed
    answer: str  # first gpt turn
    scenes: tuple[Scene, ...] | None  # None: segment the video like `salova index`
    where: str  # "file:line" for messages


@dataclass
class ReadReport:
    """What reading the data files kept and skipped."""

    samples: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())


# ---------------------------------------------------------------------------------------- reading
def read_samples(
    paths: list[str | Path], video_root: str | Path | None = None, image_root: str | Path | None = None
) -> tuple[list[Sample], ReadReport]:
    """Read LLaVA-style ``.json`` lists and SceneWalk-style ``.jsonl`` files into samples.

    Relative media paths resolve against ``video_root`` (videos) / ``image_root`` (images; default
    ``video_root``), else the data file's folder.
    """
    report = ReadReport()
    samples: list[Sample] = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            raise TrainingDataError(f"training data file not found: {path}")
        vroot = Path(video_root).expanduser() if video_root else path.parent
        iroot = Path(image_root).expanduser() if image_root else vroot
        for where, record in _records(path, report):
            try:
                sample = parse_record(record, where, vroot, iroot)
            except ValueError as exc:
                _skip(report, "malformed", f"{where}: {exc}")
                continue
            if not sample.media.is_file():
                _skip(report, "missing media", f"{where}: {sample.media} not found")
                continue
            samples.append(sample)
    report.samples = len(samples)
    if report.total_skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(report.skipped.items()))
        logger.warning("training data: skipped %d record(s) (%s); kept %d", report.total_skipped, reasons,
                       len(samples))
    if not samples:
        files = ", ".join(str(p) for p in paths)
        detail = f" ({', '.join(f'{n} {r}' for r, n in report.skipped.items())})" if report.skipped else ""
        raise TrainingDataError(f"no usable training samples in {files}{detail}")
    return samples, report


def _skip(report: ReadReport, reason: str, message: str) -> None:
    report.skipped[reason] += 1
    if report.skipped[reason] <= _EXAMPLES_LOGGED:
        logger.warning("skipping %s", message)


def _records(path: Path, report: ReadReport):
    """(where, record) pairs: a .jsonl file line by line, anything else as one JSON list (or JSONL fallback)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSONL under a .json name
        if isinstance(data, list):
            for i, record in enumerate(data):
                yield f"{path.name}[{i}]", record
            return
        if isinstance(data, dict):
            yield f"{path.name}[0]", data
            return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            _skip(report, "malformed", f"{path.name}:{n}: not JSON ({exc.msg})")
            continue
        yield f"{path.name}:{n}", record


def parse_record(record: dict, where: str, video_root: Path, image_root: Path) -> Sample:
    """One LLaVA/SceneWalk record -> Sample; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    video, image = record.get("video"), record.get("image")
    if isinstance(image, list):  # LLaVA multi-image records: SALOVA takes one picture
        image = image[0] if image else None
    if video:
        media, kind = _resolve(video, video_root), "video"
    elif image:
        media, kind = _resolve(image, image_root), "image"
    else:
        raise ValueError("no 'video' or 'image' field")
    if kind == "video" and media.suffix.lower() in IMAGE_SUFFIXES:
        kind = "image"
    question, answer = first_exchange(record.get("conversations"))
    scenes = parse_scenes(record.get("scenes")) if kind == "video" else None
    return Sample(str(record.get("id", where)), media, kind, question, answer, scenes, where)


def _resolve(name, root: Path) -> Path:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"bad media path {name!r}")
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def first_exchange(conversations) -> tuple[str, str]:
    """The first human turn and the gpt turn after it; later turns are not used (see docs/training.md)."""
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("no 'conversations' list")
    for i, turn in enumerate(conversations[:-1]):
        nxt = conversations[i + 1]
        if not (isinstance(turn, dict) and isinstance(nxt, dict)):
            raise ValueError("a conversation turn is not an object")
        if turn.get("from") in ("human", "user") and nxt.get("from") in ("gpt", "assistant"):
            question = _MEDIA_TOKEN.sub(" ", str(turn.get("value", ""))).strip()
            answer = str(nxt.get("value", "")).strip()
            if not answer:
                raise ValueError("empty gpt answer")
            return question, answer
    raise ValueError("no human turn followed by a gpt turn")


def parse_scenes(raw) -> tuple[Scene, ...] | None:
    """SceneWalk ``scenes``: start/end time (s) or frame per scene, optional v2t_score/t2t_score."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise ValueError("'scenes' must be a non-empty list")
    scenes = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            raise ValueError(f"scene {i} is not an object")
        start_s, end_s = _num(s, "start_time"), _num(s, "end_time")
        start_f, end_f = _num(s, "start_frame"), _num(s, "end_frame")
        has_time = start_s is not None and end_s is not None
        has_frames = start_f is not None and end_f is not None
        if not (has_time or has_frames):
            raise ValueError(f"scene {i} has neither start_time/end_time nor start_frame/end_frame")
        if (has_time and end_s < start_s) or (has_frames and end_f < start_f):
            raise ValueError(f"scene {i} ends before it starts")
        scenes.append(Scene(
            start_s if has_time else None, end_s if has_time else None,
            int(start_f) if has_frames else None, int(end_f) if has_frames else None,
            _score(s, "v2t_score"), _score(s, "t2t_score"),
        ))
    return tuple(scenes)


def _num(d: dict, key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{key}={value!r} is not finite")
    return number


def _score(d: dict, key: str) -> float | None:
    value = d.get(key)
    if isinstance(value, list):  # one score per sentence: the segment's best
        value = max((float(v) for v in value), default=None)
    return _num({key: value}, key)


# ---------------------------------------------------------------------------------------- labels
def router_labels(
    scenes: tuple[Scene, ...] | None, v2t_threshold: float = 0.18, t2t_threshold: float = 0.8,
    max_positives: int = 5,
) -> list[bool] | None:
    """Relevant segments from the data's scores; None when the data carries no score.

    Paper: positive when v2t > 0.18 or t2t > 0.8. As in the reference code, at most ``max_positives``
    positives are kept (the best by v2t), and a sample with none gets its best-v2t segment (else best
    t2t) as the single positive.
    """
    if not scenes or all(s.v2t is None and s.t2t is None for s in scenes):
        return None
    v2t = [s.v2t if s.v2t is not None else -math.inf for s in scenes]
    t2t = [s.t2t if s.t2t is not None else -math.inf for s in scenes]
    positive = [v > v2t_threshold or t > t2t_threshold for v, t in zip(v2t, t2t, strict=True)]
    chosen = [i for i, p in enumerate(positive) if p]
    if len(chosen) > max_positives:
        chosen = sorted(chosen, key=lambda i: (v2t[i], t2t[i]), reverse=True)[:max_positives]
    if not chosen:
        key = v2t if any(s.v2t is not None for s in scenes) else t2t
        chosen = [int(np.argmax(key))]
    return [i in chosen for i in range(len(scenes))]


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
class Example:
    """A decoded training sample, what the training forward consumes."""

    id: str
    question: str
    answer: str
    frames: torch.Tensor | None  # [f, h, w, 3] uint8; None when the features are cached
    segment_of_frame: torch.Tensor | None  # [f] long, segment index of each frame (non-decreasing)
    labels: list[bool] | None  # per segment; None: the data has no scores (all count as relevant)
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
        max_positives: int = 5,
    ):
        self.samples = samples
        self.fps, self.max_segment_s, self.backend, self.fit = fps, max_segment_s, backend, fit
        self.thresholds = (v2t_threshold, t2t_threshold, max_positives)
        self.cached: set[str] = set()  # ids whose features the training forward keeps; no decode needed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Example | Skipped:
        s = self.samples[i]
        if s.id in self.cached:
            return Example(s.id, s.question, s.answer, None, None, None, 0)
        try:
            return self.decode(s)
        except (SalovaError, OSError, ValueError) as exc:  # VideoOpenError, TrainingDataError, I/O
            return Skipped(s.id, f"{s.where}: {exc}")

    def decode(self, s: Sample) -> Example:
        if s.kind == "image":
            frames = load_image(s.media, self.fit)
            return Example(s.id, s.question, s.answer, torch.from_numpy(frames), torch.zeros(1, dtype=torch.long),
                           [True], 1)
        video = sample_frames(s.media, self.fps, backend=self.backend, fit=self.fit)
        labels = None
        if s.scenes is not None:
            groups = assign_scenes(video, s.scenes)
            labels = router_labels(s.scenes, *self.thresholds)
        else:
            groups = detected_segments(video, self.max_segment_s)
        # Frames grouped by segment, segments in data order (a frame in two overlapping scenes is in both).
        order = np.concatenate(groups)
        seg = np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)])
        frames = torch.from_numpy(np.ascontiguousarray(video.frames[order]))
        return Example(s.id, s.question, s.answer, frames, torch.from_numpy(seg).long(), labels, len(groups))


def collate(batch: list) -> list:
    """Variable-length videos: the micro-batch stays a list (module level so workers can pickle it)."""
    return batch
