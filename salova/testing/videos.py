"""Synthetic videos with exactly known cuts, and broken files, written with PyAV: the one video writer that
tests, benchmarks and demos (``training/synthetic_needle.py``) share.

    from salova.testing.videos import make_video

    video = make_video(tmp_path / "a.mp4", segments=[(2.0, (255, 0, 0)), (2.0, "noise")])
    video.cut_frames   # [60]: the first frame of every scene after the first
    open(video)        # a MadeVideo is os.PathLike

A segment's look is one of:
- an ``(r, g, b)`` tuple: a flat colour;
- ``"noise"``: seeded static noise (a textured still, different per segment);
- ``"bars"``: colour bars drifting 1 px/frame (motion without a cut);
- ``"checker"``: a checkerboard drifting 1 px/frame;
- a callable ``f(i, t) -> [H, W, 3] uint8 RGB`` for frame ``i`` of the segment at ``t`` seconds.

Segment ``j`` has ``round(duration_j * fps)`` frames, so cut frames are the running sums of those.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

Look = tuple[int, int, int] | str | Callable[[int, float], np.ndarray]


@dataclass
class MadeVideo(os.PathLike):
    """What ``make_video`` wrote; usable wherever a path is expected."""

    path: Path
    fps: float
    size: tuple[int, int]  # (W, H)
    num_frames: int
    cut_frames: list[int] = field(default_factory=list)  # first frame of each new scene

    @property
    def cut_times(self) -> list[float]:
        return [f / self.fps for f in self.cut_frames]

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def __fspath__(self) -> str:
        return str(self.path)


def _render(look: Look, i: int, t: float, size: tuple[int, int], seed: int) -> np.ndarray:
    """One RGB frame, shape [H, W, 3] uint8."""
    w, h = size
    if callable(look):
        return np.ascontiguousarray(look(i, t), dtype=np.uint8)
    if isinstance(look, tuple):
        return np.broadcast_to(np.asarray(look, dtype=np.uint8), (h, w, 3)).copy()
    if look == "noise":
        # Smooth-ish noise (8x8 blocks) so the encoder keeps it stable from frame to frame.
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, size=((h + 7) // 8, (w + 7) // 8, 3), dtype=np.uint8)
        return np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)[:h, :w].copy()
    if look == "bars":
        palette = np.array(
            [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
            dtype=np.uint8,
        )
        x = (np.arange(w) + i) % w
        return np.broadcast_to(palette[x * len(palette) // w], (h, w, 3)).copy()
    if look == "checker":
        cell = max(4, min(w, h) // 8)
        yy, xx = np.mgrid[0:h, 0:w]
        on = (((xx + i) // cell) + (yy // cell)) % 2 == 1
        rgb = np.zeros((h, w, 3), np.uint8)
        rgb[on] = (230, 230, 230)
        rgb[~on] = (30, 30, 60)
        return rgb
    raise ValueError(f"unknown segment look {look!r}")


class VideoWriter:
    """Frames in, an H.264 (or other codec) file out: the one place synthetic videos are encoded.

    ``quality`` are the codec options (default ``crf 18``; ``{"qp": "0"}`` is lossless, so frames decode to
    the same pixels on every run). ``vfr`` gives a 1/90000 time base so irregular frame times survive muxing.
    ``rotation`` is display-matrix metadata only; ``faststart`` puts an MP4's index first; ``audio`` adds an AAC
    track for ``add_tone`` / ``add_audio`` at ``audio_rate`` Hz.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float, size: tuple[int, int], *, codec: str = "libx264",
        quality: dict[str, str] | None = None, pix_fmt: str = "yuv420p", rotation: int = 0, faststart: bool = False,
        vfr: bool = False, audio: bool = False, audio_rate: int = 44100,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.size, self.vfr, self.frames = size, vfr, 0
        self._out = av.open(str(self.path), mode="w", options={"movflags": "faststart"} if faststart else {})
        self.stream = self._out.add_stream(codec, rate=self.rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = size[0], size[1], pix_fmt
        if vfr:
            self.stream.codec_context.time_base = Fraction(1, 90000)
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", **(quality or {"crf": "18"})}
        else:
            self.stream.bit_rate = 4_000_000
        if rotation:
            self.stream.set_display_rotation(rotation)
        self.audio = None
        if audio:  # streams must all exist before the first frame is muxed
            self.audio = self._out.add_stream("aac", rate=audio_rate)
            self.audio.layout = "mono"

    def write(self, image: np.ndarray, time_s: float | None = None, format: str = "rgb24") -> None:
        """One frame: ``[H, W, 3]`` uint8 RGB, or a packed ``[H*3/2, W]`` plane buffer with ``format="yuv420p"``.
        ``time_s`` only for ``vfr`` files (default: the next frame at ``fps``)."""
        frame = av.VideoFrame.from_ndarray(image, format=format)
        if self.vfr and time_s is not None:
            frame.pts, frame.time_base = round(time_s * 90000), Fraction(1, 90000)
        else:
            frame.pts, frame.time_base = self.frames, 1 / self.rate
        self._out.mux(self.stream.encode(frame))
        self.frames += 1

    def add_tone(self, seconds: float) -> None:
        """``seconds`` of a 440 Hz tone on the audio track (``audio=True``; call after the last frame)."""
        self._flush()
        _write_tone(self._out, self.audio, seconds)

    def add_audio(self, samples: np.ndarray) -> None:
        """Mono samples [n] float32 in [-1, 1] at ``audio_rate`` on the audio track (``audio=True``; call after
        the last frame), e.g. speech from ``espeak-ng -w``."""
        self._flush()
        _write_pcm(self._out, self.audio, np.asarray(samples, np.float32))

    def _flush(self) -> None:
        if self.stream is not None:
            self._out.mux(self.stream.encode(None))
            self.stream = None

    def close(self) -> None:
        self._flush()
        self._out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_video(
    path: str | os.PathLike,
    segments: Sequence[tuple[float, Look]],
    fps: float = 30,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    *,
    rotation: int = 0,
    with_audio: bool = False,
    frame_times: Sequence[float] | None = None,
    faststart: bool = False,
    pix_fmt: str = "yuv420p",
    audio: np.ndarray | None = None,
    audio_rate: int = 44100,
) -> MadeVideo:
    """Write a video made of ``segments`` (duration in seconds, look) and return its ground truth.

    ``rotation`` (degrees, counter-clockwise) is stored as display-matrix metadata only: the
    pixels are written unrotated. ``frame_times`` (seconds, one per frame, increasing) makes a
    variable-frame-rate file; frames still come from ``segments`` at ``fps``. ``faststart`` puts
    an MP4's index (moov) first, so a truncated copy still opens and decodes a prefix. ``pix_fmt``
    e.g. ``"yuv420p10le"`` for 10-bit video. ``audio`` (mono float32 samples at ``audio_rate``, e.g.
    speech placed at known times) is the sound track; ``with_audio`` alone gives a 440 Hz tone.
    """
    counts = [round(d * fps) for d, _ in segments]
    total = sum(counts)
    if frame_times is not None and len(frame_times) != total:
        raise ValueError(f"frame_times has {len(frame_times)} entries, segments make {total} frames")
    cut_frames = list(np.cumsum(counts)[:-1].tolist()) if len(counts) > 1 else []
    with VideoWriter(path, fps, size, codec=codec, pix_fmt=pix_fmt, rotation=rotation, faststart=faststart,
                     vfr=frame_times is not None, audio=with_audio or audio is not None,
                     audio_rate=audio_rate) as writer:
        for seg, ((_, look), n) in enumerate(zip(segments, counts, strict=True)):
            for i in range(n):
                t = frame_times[writer.frames] if frame_times is not None else None
                writer.write(_render(look, i, i / fps, size, seed=seg), time_s=t)
        if audio is not None:
            writer.add_audio(audio)
        elif with_audio:
            writer.add_tone(total / fps)
    return MadeVideo(path=writer.path, fps=float(writer.rate), size=size, num_frames=total, cut_frames=cut_frames)


def _write_tone(out: av.container.OutputContainer, audio: av.audio.stream.AudioStream, seconds: float) -> None:
    """Mux ``seconds`` of a 440 Hz tone into ``audio``."""
    sr = audio.rate
    t = np.arange(int(seconds * sr)) / sr
    _write_pcm(out, audio, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))


def _write_pcm(out: av.container.OutputContainer, audio: av.audio.stream.AudioStream, pcm: np.ndarray) -> None:
    """Mux mono float32 samples [n] at the stream's rate into ``audio``."""
    sr, chunk, n = audio.rate, 1024, len(pcm)
    for start in range(0, n, chunk):
        block = pcm[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = sr, start
        out.mux(audio.encode(frame))
    out.mux(audio.encode(None))


# --- Bad inputs ---------------------------------------------------------------------------------


def make_zero_byte(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_random_bytes(path: str | os.PathLike, size: int = 64 * 1024, seed: int = 0) -> Path:
    """Random bytes under a video name (e.g. ``junk.mp4``)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def make_text_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text("this is not a video\n" * 200)
    return path


def make_audio_only(path: str | os.PathLike, seconds: float = 1.0) -> Path:
    """An AAC tone in an MP4/M4A container: a valid media file with no video stream."""
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        _write_tone(out, audio, seconds)
    return path


def make_truncated(src: str | os.PathLike, dst: str | os.PathLike, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def make_corrupt_middle(src: str | os.PathLike, dst: str | os.PathLike, start: float = 0.4, stop: float = 0.6) -> Path:
    """Copy ``src`` with the bytes between the ``start`` and ``stop`` fractions overwritten by noise."""
    data = bytearray(Path(src).read_bytes())
    a, b = int(len(data) * start), int(len(data) * stop)
    data[a:b] = np.random.default_rng(1).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst
