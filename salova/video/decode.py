"""Open a video file once and stream its frames, whatever decoder is behind it.

``probe_video`` checks a file with PyAV and turns every way a user's file can be unusable into one
:class:`~salova.errors.VideoOpenError` line. ``backends.open_frames`` then opens a decoding backend that
yields ``(time_s, image)`` pairs one frame at a time (constant memory in video length); the source turns an
image into the scene detector's input (``small_bgr``) and, for sampled frames, full RGB (``sample_rgb``):

- ``"sparse"`` (``sparse.py``): PyAV decoding; the detector's downscaled frame is converted from the pixels
  the downscale reads only, to the bit what the CLI computes. 8-bit 4:2:0 video only.
- ``"opencv"``: ``cv2.VideoCapture``, the decoder the ``scenedetect`` CLI uses by default. Its
  frames, timestamps and frame rate are the CLI's bit for bit, so scene cuts agree exactly.
- ``"decord"``: decord's sequential reader. Same pixels as OpenCV for 8-bit 4:2:0 video in our
  checks, but not for 10-bit video, and no faster than OpenCV here; never auto-selected.
- ``"pyav"``: PyAV converting whole frames; the most informative errors.
- ``"auto"``: sparse, then OpenCV (other pixel formats, or a file sparse refuses), then PyAV.

Damaged files: ``"opencv"`` stops at the first region it cannot read; when that is short of the
container's duration the source continues with PyAV from the last good frame (``resync.py``), skipping
damaged packets to the next keyframe, and records the holes in ``gaps``. FFmpeg's own console messages
are silenced (``OPENCV_FFMPEG_LOGLEVEL``, unless set; PyAV's are off by default): salova logs the
skipped packets at DEBUG and reports the holes as one warning line.

Frame times are presentation times in seconds from the stream start (the first frame is usually
0.0). Frame numbers follow PySceneDetect: ``round(time_s * fps)`` with the nominal ``fps``, which is
the decode index for a constant-frame-rate file.
"""

from __future__ import annotations

import logging
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

# OpenCV's FFmpeg writes "[h264 @ 0x...] error while decoding MB" lines straight to stderr; quiet (-8)
# unless the user asks for them. Read when the first capture opens, so before any cv2.VideoCapture.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np
from scenedetect.scene_manager import compute_downscale_factor

from salova.defaults import VIDEO_BACKENDS
from salova.errors import VideoOpenError
from salova.video.resync import HOLE_FRAMES, PacketDecoder, silent_holes

logger = logging.getLogger("salova.video")

BACKENDS = VIDEO_BACKENDS

# FFmpeg demuxers that render text files (.txt, .nfo, ...) as "video"; a user never means these.
_TEXT_FORMATS = {"tty", "bin", "xbin", "adf", "idf"}

# scenedetect's VideoStreamCv2 retries a failed grab this many times before calling it the end.
_MAX_DECODE_ATTEMPTS = 5
# OpenCV ending more than this many nominal frames before the container's duration: resume with PyAV.
_RESYNC_MIN_REST = 2


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it (container values, display orientation)."""

    path: Path
    width: int  # display width in pixels, rotation applied
    height: int  # display height in pixels, rotation applied
    fps: float  # nominal (average) frame rate; frame numbers are round(time_s * fps)
    num_frames: int  # container estimate, 0 if unknown; ScanResult has the decoded count
    duration_s: float  # container estimate, 0.0 if unknown
    backend: str = ""  # the decoder actually used: "opencv", "pyav" or "decord"
    rotation: int = 0  # display rotation in degrees counter-clockwise, as stored in the file


@dataclass(frozen=True)
class SampledFrame:
    """A frame picked by the sampler, full resolution, display orientation.

    ``rgb``: [H, W, 3] uint8, RGB order.
    """

    frame_index: int
    time_s: float
    rgb: np.ndarray


@dataclass(frozen=True)
class _Probe:
    width: int  # coded width (before rotation)
    height: int
    fps: Fraction
    num_frames: int
    duration_s: float
    rotation: int


def _fail(path: Path, reason: str) -> VideoOpenError:
    return VideoOpenError(f"{path.name}: {reason}")


def _ffmpeg_reason(err: BaseException) -> str:
    """A short reason from an FFmpeg/PyAV error (its strerror without the file name)."""
    reason = getattr(err, "strerror", None) or str(err)
    return reason.strip().rstrip(".").lower() or type(err).__name__


def probe_video(path: str | os.PathLike) -> tuple[Path, _Probe]:
    """Check that ``path`` is a readable file with a video stream; raise ``VideoOpenError`` if not.

    Decodes nothing: a file whose frames cannot be decoded fails later, in ``open_frames``.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "file not found")
    if path.is_dir():
        raise _fail(path, "is a directory, not a video file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise _fail(path, f"cannot read file ({err.strerror or err})") from err
    if size == 0:
        raise _fail(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise _fail(path, "permission denied")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise _fail(path, f"not a video file ({_ffmpeg_reason(err)})") from err
    with container:
        fmt = container.format.name
        if fmt in _TEXT_FORMATS:
            raise _fail(path, f"not a video file (FFmpeg reads it as {container.format.long_name or fmt})")
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise _fail(path, "a still image, not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise _fail(path, f"no video stream (found: {', '.join(kinds)})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise _fail(path, f"video stream has no frame size (codec {ctx.name or 'unknown'})")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise _fail(path, "video stream has no frame rate")
        fps = Fraction(rate.numerator, rate.denominator)
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration:
            duration_s = container.duration / av.time_base
        num_frames = stream.frames or round(duration_s * fps)
        rotation = _stream_rotation(stream)
    return path, _Probe(ctx.width, ctx.height, fps, int(num_frames), duration_s, rotation)


def _stream_rotation(stream: av.video.stream.VideoStream) -> int:
    """Display rotation (degrees counter-clockwise, multiple of 90) from the stream's metadata."""
    try:
        # The display matrix lives on decoded frames in PyAV; decoding one frame is cheap.
        frame = next(iter(stream.container.decode(stream)))
        rotation = int(round(frame.rotation or 0))
    except (av.FFmpegError, StopIteration, AttributeError, ValueError):
        return 0
    return (round(rotation / 90) * 90) % 360


class FrameSource(ABC):
    """Frames of one video in presentation order, one at a time.

    Iterating yields ``(time_s, image)``: ``image`` is [H, W, 3] uint8 in ``channel_order``, full
    resolution; ``rotate_k`` quarter turns (``np.rot90``) bring it to display orientation. A decode
    error after the first frame ends iteration and is recorded in ``stopped_early``, unless the source
    can skip the damage: then the lost stretches are in ``gaps`` and the skipped packets in ``errors``.
    """

    name: str
    channel_order: str  # "bgr" or "rgb"
    fps: Fraction
    rotate_k: int = 0
    stopped_early: str | None = None
    _resync: PacketDecoder | None = None  # the PyAV decoder that skips damaged packets, once in use

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """[(from_s, to_s)]: stretches lost to corrupt data (decoding resumed after each)."""
        return self._resync.gaps if self._resync is not None else []

    @property
    def errors(self) -> int:
        """Damaged packets skipped."""
        return self._resync.errors if self._resync is not None else 0

    def __init__(self, path: Path, probe: _Probe, downscale: float | None = None) -> None:
        self.path = path
        self.probe = probe
        self.downscale = downscale  # the detector's downscale factor; None: the CLI's, from the frame width
        self._first: tuple[float, np.ndarray] | None = None

    def open(self) -> None:
        """Open the decoder and decode the first frame; raise ``VideoOpenError`` if impossible."""
        self._open()
        try:
            first = self._read()
        except Exception as err:  # e.g. cv2.error: the file is as good as undecodable
            self.close()
            raise _fail(self.path, f"cannot decode the first frame ({err})") from err
        if first is None:
            reason = self.stopped_early or "no frame could be decoded"
            self.close()
            raise _fail(self.path, reason)
        self.stopped_early = None
        self._first = first
        self.size = self.image_size(first[1])
        w, h = self.size
        # scenedetect's SceneManager: compute_downscale_factor(max(width, height)), bilinear, rounded sizes.
        self.factor = compute_downscale_factor(max(w, h)) if self.downscale is None else self.downscale
        self.small_size = (max(1, round(w / self.factor)), max(1, round(h / self.factor)))

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the images this source yields (before ``rotate_k``)."""
        assert self._first is not None, "open() first"
        return self.size

    def image_size(self, image: np.ndarray) -> tuple[int, int]:
        """(width, height) of one yielded image."""
        h, w = image.shape[:2]
        return w, h

    def small_bgr(self, image: np.ndarray) -> np.ndarray | None:
        """The scene detector's input for one yielded image: BGR, downscaled as the CLI downscales
        ([h, w, 3] uint8, before ``rotate_k``); None when the frame changed size mid-stream (skipped, as the
        CLI skips it)."""
        if self.image_size(image) != self.size:
            return None
        small = image
        if self.factor > 1.0:
            small = cv2.resize(image, self.small_size, interpolation=cv2.INTER_LINEAR)
        if self.channel_order == "rgb":
            # Channel order and bilinear resizing commute, so swap on the small image.
            small = np.ascontiguousarray(small[..., ::-1])
        return small

    def sample_rgb(self, image: np.ndarray) -> np.ndarray:
        """One yielded image at full resolution for the encoder: [H, W, 3] uint8 RGB, display orientation."""
        rgb = image if self.channel_order == "rgb" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self.rotate_k:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=self.rotate_k))
        return rgb

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        assert self._first is not None, "open() first"
        item, self._first = self._first, None
        while item is not None:
            yield item
            item = self._read()

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> tuple[float, np.ndarray] | None:
        """The next frame, or None at the end (setting ``stopped_early`` if it was an error)."""

    @abstractmethod
    def close(self) -> None: ...


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` read exactly as scenedetect's ``VideoStreamCv2`` reads it."""

    name = "opencv"
    channel_order = "bgr"

    def _open(self) -> None:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise _fail(self.path, "OpenCV cannot open the video")
        # Same as the CLI: frames come out in display orientation.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1.0)
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or not math.isfinite(fps) or fps <= 0:
            cap.release()
            raise _fail(self.path, "OpenCV reports no frame rate")
        self._cap = cap
        self._jumps: list[tuple[float, float]] = []  # (from_s, to_s) where OpenCV's times skip ahead
        self._read_count = 0
        self.fps = _framerate_to_fraction(fps)
        self._count = cap.get(cv2.CAP_PROP_FRAME_COUNT)

    def _read(self) -> tuple[float, np.ndarray] | None:
        if self._resync is not None:
            return self._read_resync()
        cap = self._cap
        grabbed = cap.grab()
        if not grabbed:
            # Like VideoStreamCv2.read: a failed grab short of the known end gets a few retries.
            position = cap.get(cv2.CAP_PROP_POS_FRAMES)
            if self._count > 0 and position < self._count - 1:
                for _ in range(_MAX_DECODE_ATTEMPTS):
                    grabbed = cap.grab()
                    if grabbed:
                        break
            if not grabbed:
                # End of file, or OpenCV gave up on damaged data: carry on with PyAV when the container
                # says there is more.
                return self._start_resync()
        ok, image = cap.retrieve()
        if not ok or image is None:
            self.stopped_early = "OpenCV could not convert a decoded frame"
            return None
        time_s = self._time_s()
        last = getattr(self, "_last_time", None)
        if last is not None and time_s - last > HOLE_FRAMES / float(self.fps):
            self._jumps.append((round(last + 1 / float(self.fps), 6), round(time_s, 6)))
        self._last_time = time_s
        self._read_count += 1
        return time_s, image

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """Holes OpenCV skipped silently (it reports no decode errors: see ``silent_holes``), then PyAV's."""
        own = silent_holes(self._jumps, self._read_count, self.probe.num_frames)
        return own + super().gaps

    def _start_resync(self) -> tuple[float, np.ndarray] | None:
        last = getattr(self, "_last_time", None)
        remaining = self.probe.duration_s - (last or 0.0) - 1 / float(self.fps)
        if last is None or remaining <= _RESYNC_MIN_REST / float(self.fps):
            return None  # the end (or as good as): the clean-file path, exactly scenedetect's frames
        try:
            self._resync = PacketDecoder(self.path, self.probe.fps, after_s=last)
        except (av.FFmpegError, OSError) as err:
            logger.debug("%s: PyAV cannot resume after %.3fs: %s", self.path.name, last, err)
            return None
        self._resync_frames = iter(self._resync)
        logger.debug("%s: OpenCV stopped at %.3fs of ~%.1fs; resuming with PyAV", self.path.name, last,
                     self.probe.duration_s)
        return self._read_resync()

    def _read_resync(self) -> tuple[float, np.ndarray] | None:
        item = next(self._resync_frames, None)
        if item is None:
            self.stopped_early = self._resync.stopped_early
            return None
        time_s, frame = item
        image = frame.to_ndarray(format="bgr24")
        if self.probe.rotation:  # OpenCV's frames are in display orientation; match them
            image = np.ascontiguousarray(np.rot90(image, k=self.probe.rotation // 90))
        return time_s, image

    def _time_s(self) -> float:
        # VideoStreamCv2.position: CAP_PROP_POS_MSEC in whole microseconds, or the frame number
        # when OpenCV reports no timestamp.
        us = round(self._cap.get(cv2.CAP_PROP_POS_MSEC) * 1000)
        frame_number = math.trunc(self._cap.get(cv2.CAP_PROP_POS_FRAMES))
        if us <= 0 and frame_number > 0:
            return float((frame_number - 1) / self.fps)
        return us / 1e6

    def close(self) -> None:
        cap = getattr(self, "_cap", None)
        if cap is not None:
            cap.release()
        if self._resync is not None:
            self._resync.close()


class PyAVSource(FrameSource):
    """PyAV, frame-threaded decoding, BGR conversion by swscale (as scenedetect's pyav backend)."""

    name = "pyav"
    channel_order = "bgr"

    def _open(self) -> None:
        try:
            self._resync = PacketDecoder(self.path, self.probe.fps, expected_frames=self.probe.num_frames)
        except (av.FFmpegError, OSError) as err:
            raise _fail(self.path, f"not a video file ({_ffmpeg_reason(err)})") from err
        self.fps = self.probe.fps
        self.rotate_k = self.probe.rotation // 90
        self._frames = iter(self._resync)

    def _read(self) -> tuple[float, np.ndarray] | None:
        item = next(self._frames, None)
        if item is None:
            self.stopped_early = self._resync.stopped_early
            return None
        time_s, frame = item
        return time_s, frame.to_ndarray(format="bgr24")

    def close(self) -> None:
        if self._resync is not None:
            self._resync.close()


class DecordSource(FrameSource):
    """decord's sequential reader (``VideoReader.next``), RGB frames."""

    name = "decord"
    channel_order = "rgb"

    def _open(self) -> None:
        try:
            import decord
        except ImportError as err:
            raise _fail(self.path, "backend 'decord' is not installed (pip install decord)") from err
        try:
            # One decoder thread pool per reader; nothing is read ahead beyond decord's own queue.
            self._reader = decord.VideoReader(str(self.path), num_threads=0)
        except decord.DECORDError as err:
            raise _fail(self.path, f"decord cannot open the video ({_decord_reason(err)})") from err
        avg_fps = self._reader.get_avg_fps()
        self.fps = _framerate_to_fraction(avg_fps) if avg_fps else self.probe.fps
        self._index = 0
        self._length = len(self._reader)

    def open(self) -> None:
        super().open()
        # decord applies the display rotation itself (0.6.0 does); rotate only if it did not.
        w, h = self.frame_size
        if self.probe.rotation in (90, 270) and (w, h) == (self.probe.width, self.probe.height):
            self.rotate_k = self.probe.rotation // 90

    def _read(self) -> tuple[float, np.ndarray] | None:
        import decord

        if self._index >= self._length:
            return None
        try:
            image = self._reader.next().asnumpy()
            start_s = float(self._reader.get_frame_timestamp(self._index)[0])
        except StopIteration:
            return None
        except decord.DECORDError as err:
            self.stopped_early = f"decode error ({_decord_reason(err)})"
            return None
        self._index += 1
        return start_s, image

    def close(self) -> None:
        self._reader = None


def _decord_reason(err: BaseException) -> str:
    """decord's message without its "[hh:mm:ss] /src/file.cc:123: " prefixes and stack."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return re.split(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", text)[-1].strip() or type(err).__name__


def _framerate_to_fraction(fps: float) -> Fraction:
    """The CLI's frame-rate fraction (NTSC rates made exact), so frame numbers agree with it."""
    from scenedetect.common import framerate_to_fraction

    return framerate_to_fraction(fps)
