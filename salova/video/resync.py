"""Decoding through corrupt data: PyAV packet by packet, damaged packets skipped, the holes recorded.

OpenCV's reader stops at the first region it cannot demux or decode, and a plain PyAV ``decode()`` loop
stops at the first packet that raises. ``PacketDecoder`` feeds the decoder one packet at a time: a packet
that raises is dropped, the decoder picks up again at the next frame it can reconstruct (the next
keyframe when references were lost), and every stretch of time with no frame around such errors is
recorded in ``gaps``. FFmpeg's own messages stay silent (PyAV's default); skipped packets are logged on
``salova.video`` (the first few at INFO, shown by ``salova -v``); the gaps become one warning line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

logger = logging.getLogger("salova.video")

# Consecutive packets that fail to demux before the rest of the file is given up as unreadable.
MAX_DEMUX_ERRORS = 64
# Skipped packets logged at INFO per file; the rest at DEBUG.
_ERRORS_AT_INFO = 5
# A jump of more than this many nominal frame durations near a decode error is a hole in the video.
HOLE_FRAMES = 1.5
# Frames after an error within which a hole is put down to it (frame threads deliver errors late).
_ERROR_WINDOW = 32
# Frames whose time is within this (s) of the previous one are repeats after a seek, not new frames.
_TIME_EPS = 1e-6


def _reason(err: BaseException) -> str:
    reason = getattr(err, "strerror", None) or str(err)
    return reason.strip().rstrip(".").lower() or type(err).__name__


class PacketDecoder:
    """Frames of a file's first video stream with strictly increasing times, skipping damaged packets.

    Yields ``(time_s, frame)``: presentation time in seconds from the stream start, and the PyAV frame.
    ``after_s``: seek to the keyframe before this time and yield only later frames (continuing a decode
    that another reader gave up on). ``gaps``: ``[(from_s, to_s)]`` stretches lost to decode errors,
    from one nominal frame after the last good frame to the next good frame. ``errors``: packets
    skipped. ``stopped_early``: why decoding ended before the end of the file, or None.
    """

    def __init__(self, path: Path, fps: Fraction, *, after_s: float | None = None, expected_frames: int = 0) -> None:
        self.path = path
        self.fps = fps
        self.expected_frames = expected_frames  # the container's frame count (0: unknown), for silent holes
        self.error_gaps: list[tuple[float, float]] = []  # holes next to a decode error
        self.jumps: list[tuple[float, float]] = []  # other holes: damage the decoder skipped silently, or VFR
        self.count = 0
        self.errors = 0
        self.stopped_early: str | None = None
        self.container = av.open(str(path))
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        self.stream = stream
        self.start_pts: int | None = stream.start_time
        self.last_time: float | None = after_s
        if after_s is not None and stream.time_base:
            target = round(after_s / stream.time_base) + (self.start_pts or 0)
            try:
                self.container.seek(target, stream=stream, backward=True, any_frame=False)
            except (av.FFmpegError, OSError) as err:  # unseekable: decode from the start, skip what was seen
                logger.debug("%s: seek to %.3fs failed (%s); decoding from the start", path.name, after_s, _reason(err))
                self.container.close()
                self.container = av.open(str(path))
                self.stream = self.container.streams.video[0]
                self.stream.thread_type = "AUTO"
        # Frames decoded since the last error, None when none is pending. Resuming after another reader
        # failed counts as an error. With frame threading an error surfaces a few frames early or late, so a
        # hole within _ERROR_WINDOW frames of one is put down to it (a variable-frame-rate pause is not).
        self._since_error: int | None = 0 if after_s is not None else None
        self._frames = self._decode()

    def __iter__(self) -> Iterator[tuple[float, av.VideoFrame]]:
        return self._frames

    def _decode(self) -> Iterator[tuple[float, av.VideoFrame]]:
        packets = self.container.demux(self.stream)
        failures = 0
        while True:
            try:
                packet = next(packets)
                failures = 0
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as err:
                failures += 1
                self._note_error(f"unreadable data ({_reason(err)})")
                if failures >= MAX_DEMUX_ERRORS:
                    self.stopped_early = f"decode error ({_reason(err)})"
                    return
                continue
            try:
                frames = packet.decode()
            except (av.FFmpegError, OSError) as err:
                self._note_error(f"corrupt packet ({_reason(err)})")
                continue
            for frame in frames:
                time_s = self._time_s(frame)
                if self.last_time is not None and time_s <= self.last_time + _TIME_EPS:
                    continue  # before the resume point, or out of order after damage
                prev = self.last_time if self.last_time is not None else -1 / float(self.fps)
                if time_s - prev > HOLE_FRAMES / float(self.fps):
                    hole = (round(prev + 1 / float(self.fps), 6), round(time_s, 6))
                    (self.error_gaps if self._since_error is not None else self.jumps).append(hole)
                if self._since_error is not None:
                    self._since_error += 1
                    if self._since_error > _ERROR_WINDOW:
                        self._since_error = None
                self.last_time = time_s
                self.count += 1
                yield time_s, frame

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """[(from_s, to_s)] lost to corrupt data, in time order."""
        return sorted(self.error_gaps + silent_holes(self.jumps, self.count, self.expected_frames))

    def _note_error(self, what: str) -> None:
        self.errors += 1
        self._since_error = 0
        # The first few per file at INFO (`salova -v`), the rest at DEBUG: a damaged stretch can be thousands.
        level = logging.INFO if self.errors <= _ERRORS_AT_INFO else logging.DEBUG
        logger.log(level, "%s: %s after %.3fs; skipped", self.path.name, what, self.last_time or 0.0)

    def _time_s(self, frame: av.VideoFrame) -> float:
        if frame.pts is None or frame.time_base is None:
            # No timestamp: one nominal frame after the previous one.
            return 0.0 if self.last_time is None else self.last_time + 1 / float(self.fps)
        if self.start_pts is None:
            self.start_pts = frame.pts
        # Frames before the stream start (edit lists) count as time 0, as OpenCV reports them.
        return max(0.0, float((frame.pts - self.start_pts) * frame.time_base))

    def close(self) -> None:
        self.container.close()


def silent_holes(jumps: list[tuple[float, float]], count: int, expected: int) -> list[tuple[float, float]]:
    """The timestamp jumps that are holes although the decoder raised nothing (FFmpeg conceals damage in e.g.
    Matroska and drops the frames): only when frames are missing against the container's count and jumps are
    rare; a variable-frame-rate file jumps often and misses no frames."""
    if jumps and expected - count > 2 and len(jumps) <= max(3, count // 100):
        return list(jumps)
    return []


def describe_gaps(name: str, gaps: list[tuple[float, float]], errors: int) -> str | None:
    """One warning line for what a file lost to corrupt data, or None when it lost nothing."""
    if not gaps and not errors:
        return None
    if not gaps:
        return f"{name}: skipped {errors} corrupt packet(s); the decoder concealed the damage (no frames lost)"
    lost = sum(b - a for a, b in gaps)
    spans = ", ".join(f"{a:.2f}s-{b:.2f}s" for a, b in gaps[:5]) + (", ..." if len(gaps) > 5 else "")
    return (f"{name}: corrupt data; lost {lost:.1f}s in {len(gaps)} gap(s) ({spans}), decoding resumed at the "
            "next keyframe")
