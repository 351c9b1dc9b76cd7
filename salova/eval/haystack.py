"""V-NIAH material: haystack frames (synthetic or from videos), the needle, and one grid cell written as a video.

Everything is in 1-FPS frames: a cell of length ``L`` is ``L`` frames, i.e. ``L`` seconds of video. A cell video
holds each frame for ``HOLD`` video frames (written at ``HOLD`` fps), so salova's 1-FPS sampler reads exactly the
cell's frames back and PySceneDetect sees each change as a cut, not a flicker.

Notation: h height, w width, f frames.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from salova.errors import UsageError, VideoOpenError, option_problem
from salova.testing.videos import VideoWriter
from salova.video.backends import open_frames

# Consecutive haystack frames closer than this (mean absolute difference, 0-255) are motion, not a new shot.
MOTION_LIMIT = 30.0
HOLD = 3  # video frames per 1-FPS frame in a cell video (the adaptive detector's window is 2 frames either side)

# The default needle: a plain saturated colour, and the question/answer that go with it.
DEFAULT_NEEDLE_RGB = (220, 30, 30)
DEFAULT_QUESTION = "What is the colour of the plain single-colour screen?"
DEFAULT_ANSWER = "red"


class SyntheticHaystack:
    """A reproducible haystack: scenes of 4-12 s of muted moving textures (noise, bars, checks, gradients),
    generated frame by frame from ``seed`` (nothing is stored; any length)."""

    LOOKS = ("noise", "bars", "checker", "gradient")

    def __init__(self, size: tuple[int, int], seed: int = 0):
        self.size, self.seed = size, seed
        self._starts: list[int] = [0]  # first frame of each scene, extended on demand
        self._rng = np.random.default_rng(seed)

    def _scene_of(self, k: int) -> tuple[int, int]:
        while self._starts[-1] <= k:
            self._starts.append(self._starts[-1] + int(self._rng.integers(4, 13)))
        j = int(np.searchsorted(self._starts, k, side="right")) - 1
        return j, k - self._starts[j]

    def frame(self, k: int) -> np.ndarray:
        """Frame ``k`` [h, w, 3] uint8 RGB."""
        j, i = self._scene_of(k)
        rng = np.random.default_rng((self.seed, j))
        look = self.LOOKS[int(rng.integers(len(self.LOOKS)))]
        w, h = self.size
        base = rng.integers(60, 180, size=3)  # muted: no saturated colour competes with a colour needle
        tint = (base + rng.integers(-25, 26, size=3)).clip(0, 255)
        yy, xx = np.mgrid[0:h, 0:w]
        if look == "noise":  # random blocks drifting 2 px per second
            blocks = rng.integers(0, 2, size=((h + 15) // 16 + 1, (w + 2 * i + 15) // 16 + 1))
            on = blocks[yy // 16, (xx + 2 * i) // 16]
        elif look == "bars":  # every pattern moves by about 1/8 of its period per second: motion, not cuts
            period = max(8, w // 10)
            on = ((xx + max(1, period // 8) * i) // (period // 2)) % 2
        elif look == "checker":
            cell = max(4, min(w, h) // 8)
            on = (((xx + max(1, cell // 8) * i) // cell) + (yy // cell)) % 2
        else:
            period = max(8, w // 3)
            on = ((xx + yy + max(1, period // 8) * i) % period) < period // 2
        img = np.where(on[..., None] == 1, base, tint).astype(np.int16)
        img += np.random.default_rng((self.seed, j, i)).integers(-6, 7, size=img.shape, dtype=np.int16)
        return img.clip(0, 255).astype(np.uint8)


class VideoHaystack:
    """A haystack from real videos: their 1-FPS frames, one after the other, repeated as often as needed.

    The frames (resized to ``size``) are cached in ``cache`` (a ``.npy`` file), so a resumed run or a longer grid
    decodes nothing again.
    """

    def __init__(self, videos: Sequence[str | os.PathLike], size: tuple[int, int], length: int, cache: Path):
        self.size = size
        meta = cache.with_suffix(".json")
        key = {"videos": [str(Path(v).resolve()) for v in videos], "size": list(size)}
        if cache.is_file() and meta.is_file():
            saved = json.loads(meta.read_text())
            if saved.get("key") == key and saved.get("requested", 0) >= length:
                self.frames = np.load(cache, mmap_mode="r")
                return
        np.save(cache, _sample_videos(videos, size, length))
        meta.write_text(json.dumps({"key": key, "requested": length}))
        self.frames = np.load(cache, mmap_mode="r")

    def frame(self, k: int) -> np.ndarray:
        return np.asarray(self.frames[k % len(self.frames)])


def _sample_videos(videos: Sequence[str | os.PathLike], size: tuple[int, int], length: int) -> np.ndarray:
    """Up to ``length`` 1-FPS frames [f, h, w, 3] from ``videos`` in order (fewer if they are shorter)."""
    out: list[np.ndarray] = []
    for video in videos:
        out.extend(sample_1fps(video, size, length - len(out)))
        if len(out) >= length:
            break
    if not out:
        raise option_problem("haystack", "no frame could be read from the haystack videos")
    return np.stack(out)


def sample_1fps(video: str | os.PathLike, size: tuple[int, int], limit: int | None = None) -> list[np.ndarray]:
    """The first frame at or after every whole second of ``video``, RGB, resized to ``size`` (W, H)."""
    try:
        source, _ = open_frames(video)
    except VideoOpenError as exc:
        raise UsageError(str(exc)) from None
    frames: list[np.ndarray] = []
    try:
        for t, image in source:
            if limit is not None and len(frames) >= limit:
                break
            if t + 1e-6 < len(frames):
                continue
            frames.append(cv2.resize(source.sample_rgb(image), size, interpolation=cv2.INTER_AREA))
    finally:
        source.close()
    return frames


@dataclass
class Needle:
    """What is hidden: ``frames`` [f, h, w, 3] (an image held for f seconds, or a clip's 1-FPS frames), the
    question asked about it and the expected answer."""

    frames: np.ndarray
    question: str
    answer: str
    source: str  # "synthetic", or the image/clip path

    @classmethod
    def load(cls, size: tuple[int, int], *, image: str | None = None, clip: str | None = None, seconds: int = 2,
             question: str | None = None, answer: str | None = None, seed: int = 0) -> Needle:
        if image is not None and clip is not None:
            raise option_problem("needle_image", "give either an image or a clip as the needle, not both")
        if (image or clip) and not question:
            raise option_problem("question", "a custom needle needs its question (and --answer for exact match)")
        if seconds < 1:
            raise option_problem("needle_seconds", f"must be >= 1, got {seconds}")
        if clip is not None:
            frames = np.stack(sample_1fps(clip, size))
            return cls(frames, question, answer or "", str(clip))
        if image is not None:
            bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if bgr is None:
                raise option_problem("needle_image", f"{image}: not a readable image")
            still = cv2.resize(bgr[..., ::-1], size, interpolation=cv2.INTER_AREA)
            return cls(np.stack([still] * seconds), question, answer or "", str(image))
        w, h = size
        rng = np.random.default_rng(seed)
        plain = np.broadcast_to(np.asarray(DEFAULT_NEEDLE_RGB, np.int16), (seconds, h, w, 3))
        frames = (plain + rng.integers(-6, 7, size=plain.shape, dtype=np.int16)).clip(0, 255).astype(np.uint8)
        return cls(frames, question or DEFAULT_QUESTION, DEFAULT_ANSWER if answer is None else answer, "synthetic")


def needle_position(length: int, needle_frames: int, depth: float) -> int:
    """First frame of the needle in a cell of ``length`` frames: depth 0 = the start, 1 = the very end."""
    return int(round(depth * max(length - needle_frames, 0)))


def write_cell(path: Path, haystack, needle: Needle, length: int, depth: float) -> tuple[float, float]:
    """Write the cell video: ``length - len(needle)`` haystack frames with the needle inserted at ``depth``.
    Returns the needle's window (start_s, end_s)."""
    n = len(needle.frames)
    if length <= n:
        raise option_problem("lengths", f"{length} frames leave no room around a {n}-frame needle")
    at = needle_position(length, n, depth)
    w, h = haystack.size
    with VideoWriter(path, HOLD, (w, h), quality={"crf": "20"}) as writer:
        current = None
        for i in range(length):
            nxt = needle.frames[i - at] if at <= i < at + n else haystack.frame(i if i < at else i - n)
            if current is not None:
                _hold(writer, current, nxt, crossfade=i not in (at, at + n))
            current = nxt
        _hold(writer, current, current, crossfade=False)
    return float(at), float(at + n)


def _hold(writer: VideoWriter, image: np.ndarray, following: np.ndarray, crossfade: bool) -> None:
    """Write ``image`` for one second (``HOLD`` frames). Within the haystack, when the next frame differs only a
    little (motion rather than a new shot), the extra frames fade towards it, so the scene detector sees motion
    instead of a jump every second; the needle's edges and large changes stay hard cuts."""
    writer.write(image)
    a, b = image.astype(np.float32), following.astype(np.float32)
    fade = crossfade and float(np.abs(a - b).mean()) < MOTION_LIMIT
    for j in range(1, HOLD):
        writer.write((a + (b - a) * (j / HOLD)).round().astype(np.uint8) if fade else image)
