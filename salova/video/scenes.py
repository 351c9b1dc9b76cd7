"""One decode pass per video: scene cuts (PySceneDetect's AdaptiveDetector) and 1-FPS frames.

``VideoScanner`` decodes a file once, in a background thread, and feeds every frame to the scene
detector (downscaled, BGR, exactly as ``scenedetect -i FILE detect-adaptive`` does) and to a
sampler that keeps the first frame at or after every ``k / sample_fps`` seconds (full resolution,
RGB). Only the sampled frames are converted to RGB; memory does not grow with video length.

``split_segments`` turns the cuts into the segments SALOVA encodes: scenes, with scenes longer than
``max_segment_s`` split into equal parts.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scenedetect.common import FrameTimecode, Timecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from salova.errors import VideoOpenError
from salova.video.backends import open_frames
from salova.video.decode import FrameSource, SampledFrame, VideoInfo
from salova.video.resync import describe_gaps

logger = logging.getLogger("salova.video")

# Decoded frames buffered between the decode thread and the detector (scenedetect uses 4 too).
_QUEUE_LENGTH = 4
# Timestamps are compared to sampling ticks with this slack (s): frame times are exact to ~1 us.
_TICK_EPS = 1e-6
# on_progress is called after this many frames, and once at the end.
_PROGRESS_EVERY = 32


@dataclass(frozen=True)
class AdaptiveDetectorConfig:
    """PySceneDetect AdaptiveDetector settings; the defaults are ``scenedetect detect-adaptive``'s."""

    adaptive_threshold: float = 3.0  # a frame's score must exceed its neighbours' mean this many times
    # Shortest scene. An int counts frames; a float or a string ("0.6s", "00:00:00.600") is time,
    # resolved to frames at the video's frame rate. The CLI's default is 0.6 s (18 frames at 30 fps);
    # AdaptiveDetector's own constructor default is 15 frames.
    min_scene_len: int | float | str = "0.6s"
    window_width: int = 2  # frames either side averaged for the adaptive ratio
    min_content_val: float = 15.0  # a cut also needs at least this raw content score
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.0)  # hue, sat, lum, edges
    luma_only: bool = False  # score luma changes only (overrides weights)
    kernel_size: int | None = None  # edge dilation kernel; None: chosen from the resolution
    # Downscale factor for detection. None: automatic, as the CLI (width of about 256 px).
    downscale: int | None = None

    def __post_init__(self) -> None:
        if self.window_width < 1:
            raise ValueError("window_width must be at least 1")
        if self.downscale is not None and self.downscale < 1:
            raise ValueError("downscale must be >= 1 (1 disables downscaling)")

    def build(self, fps: Fraction) -> AdaptiveDetector:
        """The detector for a video at ``fps`` (needed to turn a time ``min_scene_len`` into frames)."""
        min_len = self.min_scene_len
        if not isinstance(min_len, int):
            # Exactly the CLI's conversion (CliContext.parse_timecode(...).frame_num).
            min_len = FrameTimecode(min_len, fps=fps).frame_num
        return AdaptiveDetector(
            adaptive_threshold=self.adaptive_threshold,
            min_scene_len=min_len,
            window_width=self.window_width,
            min_content_val=self.min_content_val,
            weights=ContentDetector.Components(*self.weights),
            luma_only=self.luma_only,
            kernel_size=self.kernel_size,
        )


@dataclass(frozen=True)
class SceneCut:
    """A scene boundary: ``frame_index`` is the first frame of the new scene."""

    frame_index: int
    time_s: float


@dataclass
class ScanResult:
    """What one pass over a video found. ``duration_s`` comes from the frames actually decoded."""

    info: VideoInfo
    cuts: list[int]  # frame indices of scene starts, increasing, 0 excluded
    frames_decoded: int
    duration_s: float  # last frame's time + one nominal frame duration
    end_frame: int = 0  # one past the last frame's index: num_frames for split_segments
    cut_times_s: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a truncated file's decode stopping early
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (from_s, to_s) lost to corrupt data


@dataclass
class _Decoded:
    """One frame handed from the decode thread to the detector."""

    time_s: float
    small_bgr: np.ndarray | None  # [h, w, 3] uint8, downscaled for the detector; None: wrong size
    rgb: np.ndarray | None  # [H, W, 3] uint8 full resolution, only for sampled frames


class VideoScanner:
    """Scene cuts and sampled frames of one video from a single decode pass.

    Iterating yields ``SceneCut`` and ``SampledFrame`` events ordered by ``frame_index``; at equal
    indices the cut comes first. So when a ``SampledFrame`` with index ``f`` arrives, every cut at
    or before ``f`` has already been yielded: the detector decides a cut ``window_width`` frames
    late, and the scanner holds sampled frames back by that many frames (at most
    ``window_width + 1`` sampled frames are held, normally one). After iteration ``result`` holds
    the totals.

    Sampling: frame ``f`` (time ``t``) is sampled when it is the first frame with ``t >= k /
    sample_fps`` for some integer ``k``; a gap in a variable-frame-rate file that skips several
    ticks gives one frame, not repeats. Times are presentation times from the stream start, so this
    holds for variable frame rates; ``frame_index`` is ``round(t * fps)`` (the decode index for
    constant-frame-rate files, the CLI's frame numbers otherwise). Sampled frames are in display
    orientation (the file's rotation applied).

    Cuts equal ``scenedetect -i FILE detect-adaptive`` (default OpenCV backend) to the frame with
    ``backend="auto"``, ``"sparse"`` or ``"opencv"``: the detector gets the CLI's pixels (BGR,
    downscaled by ``compute_downscale_factor`` with bilinear interpolation; ``"sparse"`` converts only
    the pixels that downscale reads, see ``salova.video.sparse``) with the same timecodes. ``"auto"``
    takes ``"sparse"`` for 8-bit 4:2:0 video and OpenCV for the rest. ``"pyav"`` and ``"decord"``
    give the same pixels for ordinary 8-bit video but can differ slightly (10-bit video), which can
    move a borderline cut.

    Corrupt data in the middle is skipped to the next keyframe (``result.gaps``, one line in
    ``result.warnings``); a decode error the source cannot skip keeps what was decoded and adds a line to
    ``result.warnings``; a file that yields no frame raises ``VideoOpenError`` at construction.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sample_fps: float = 1.0,
        backend: str = "auto",
        detector: AdaptiveDetectorConfig | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """Open ``path`` and decode its first frame.

        ``on_progress(n)`` is called from the iterating thread with the number of frames processed
        since its previous call (so ``tqdm.update`` fits), about every 32 frames.
        """
        if not sample_fps > 0:
            raise ValueError(f"sample_fps must be > 0, not {sample_fps}")
        self.sample_fps = float(sample_fps)
        self.backend = backend
        self.detector_config = detector or AdaptiveDetectorConfig()
        self.on_progress = on_progress
        self.result: ScanResult | None = None
        self._path_arg = path
        self._source: FrameSource | None = None
        self._open()

    def _open(self) -> None:
        source, probe = open_frames(self._path_arg, self.backend, self.detector_config.downscale)
        self._source = source
        self.path = source.path
        w, h = source.frame_size
        if source.rotate_k % 2:
            w, h = h, w
        self.info = VideoInfo(
            path=source.path,
            width=w,
            height=h,
            fps=float(source.fps),
            num_frames=probe.num_frames,
            duration_s=probe.duration_s,
            backend=source.name,
            rotation=probe.rotation,
        )

    def close(self) -> None:
        """Release the decoder (iteration does this itself when it ends)."""
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> VideoScanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[SampledFrame | SceneCut]:
        if self._source is None:
            self._open()  # a second pass decodes the file again
        source, self._source = self._source, None
        assert source is not None
        try:
            yield from self._scan(source)
        finally:
            source.close()

    # --- the pass ---------------------------------------------------------------------------------

    def _scan(self, source: FrameSource) -> Iterator[SampledFrame | SceneCut]:
        fps = source.fps
        detector = self.detector_config.build(fps)
        lag = detector.event_buffer_length  # a cut is reported at most this many frames late
        frames: queue.Queue[_Decoded | BaseException | None] = queue.Queue(_QUEUE_LENGTH)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._decode_loop, args=(source, frames, stop), name="salova-decode", daemon=True
        )
        thread.start()

        # Timecodes as scenedetect's VideoStreamCv2 makes them: whole microseconds, nominal rate.
        # (min_scene_len is compared in frames derived from these, as in the CLI.)
        time_base = Fraction(1, 1_000_000)
        recent: deque[tuple[int, float]] = deque(maxlen=lag + 1)  # (frame_index, time_s)
        held: deque[SampledFrame] = deque()  # sampled frames waiting for the detector to catch up
        cuts: list[SceneCut] = []
        warnings: list[str] = []
        decoded = 0
        unreported = 0
        skipped = 0
        last_tc: FrameTimecode | None = None
        last_time = 0.0
        last_index = -1
        try:
            while True:
                item = frames.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                decoded += 1
                if item.small_bgr is None:
                    # SceneManager skips frames whose size changed mid-stream; so do we.
                    if skipped == 0:
                        warnings.append(f"{self.path.name}: frames change size mid-stream; skipped them")
                    skipped += 1
                    continue
                timecode = FrameTimecode(Timecode(pts=round(item.time_s * 1e6), time_base=time_base), fps=fps)
                index = timecode.frame_num
                last_tc, last_time, last_index = timecode, item.time_s, index
                recent.append((index, item.time_s))
                if item.rgb is not None:
                    held.append(SampledFrame(frame_index=index, time_s=item.time_s, rgb=item.rgb))
                for cut in detector.process_frame(timecode, item.small_bgr):
                    event = self._cut_event(cut, recent, cuts)
                    if event is not None:
                        yield event
                # Everything up to `lag` frames back is settled: no cut can appear there any more.
                settled = recent[0][0] if len(recent) > lag else -1
                while held and held[0].frame_index <= settled:
                    yield held.popleft()
                unreported += 1
                if self.on_progress is not None and unreported >= _PROGRESS_EVERY:
                    self.on_progress(unreported)
                    unreported = 0
            if last_tc is not None:
                for cut in detector.post_process(last_tc):
                    event = self._cut_event(cut, recent, cuts)
                    if event is None:
                        continue
                    while held and held[0].frame_index < event.frame_index:
                        yield held.popleft()
                    yield event
            yield from held
            held.clear()
        finally:
            stop.set()
            while thread.is_alive():
                # Unblock a put() so the thread sees `stop` and exits.
                while not frames.empty():
                    frames.get_nowait()
                thread.join(timeout=0.05)
        if self.on_progress is not None and unreported:
            self.on_progress(unreported)

        if decoded == 0:
            raise VideoOpenError(f"{self.path.name}: no frame could be decoded")
        decoded_s = last_time + 1 / float(fps)
        expected_s = self.info.duration_s
        # A truncated file often just ends (no decoder error): compare with the container's duration,
        # with slack for streams whose duration counts a trailing audio tail.
        short = expected_s > 0 and decoded_s < expected_s - max(1.0, 0.02 * expected_s)
        if source.stopped_early or short:
            of = f" of ~{expected_s:.1f}s" if expected_s > 0 else ""
            warnings.insert(
                0,
                f"{self.path.name}: {source.stopped_early or 'decoding ended early'}; kept the first "
                f"{decoded_s:.1f}s{of} (file truncated or corrupt?)",
            )
        damage = describe_gaps(self.path.name, source.gaps, source.errors)
        if damage is not None:
            warnings.insert(0, damage)
        for line in warnings:
            logger.warning(line)
        self.result = ScanResult(
            info=self.info,
            cuts=[c.frame_index for c in cuts],
            frames_decoded=decoded,
            duration_s=decoded_s,
            end_frame=last_index + 1,
            cut_times_s=[c.time_s for c in cuts],
            warnings=warnings,
            gaps=list(source.gaps),
        )

    @staticmethod
    def _cut_event(cut: FrameTimecode, recent: deque[tuple[int, float]], cuts: list[SceneCut]) -> SceneCut | None:
        """The SceneCut for a detector timecode, or None for a duplicate (as SceneManager dedups)."""
        index = cut.frame_num
        time_s = next((t for i, t in recent if i == index), cut.seconds)
        if cuts and index <= cuts[-1].frame_index:
            return None
        event = SceneCut(frame_index=index, time_s=time_s)
        cuts.append(event)
        return event

    def _decode_loop(
        self,
        source: FrameSource,
        out: queue.Queue[_Decoded | BaseException | None],
        stop: threading.Event,
    ) -> None:
        """Decode thread: read, downscale for the detector, keep full RGB of sampled frames."""
        try:
            next_tick = 0.0
            for time_s, image in source:
                if stop.is_set():
                    return
                small = source.small_bgr(image)
                if small is None:
                    out.put(_Decoded(time_s, None, None))
                    continue
                rgb = None
                if time_s >= next_tick - _TICK_EPS:
                    rgb = source.sample_rgb(image)
                    next_tick = (math.floor(time_s * self.sample_fps + _TICK_EPS) + 1) / self.sample_fps
                out.put(_Decoded(time_s, small, rgb))
        except BaseException as err:
            out.put(err)  # re-raised in the iterating thread
            return
        out.put(None)
