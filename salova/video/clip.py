"""Cut a moment out of a video as its own file (PyAV): stream copy where keyframes allow, re-encode otherwise.

Stream copy keeps the original packets, so it is fast and lossless, but a copied clip can only start on a
keyframe and, to end cleanly, stop on one (or at the end of the video). Encoders usually put keyframes at
scene cuts, which is where SALOVA's segments start and end, so most moments copy. Anything else is decoded
and encoded again (H.264, AAC), starting on the exact frame at START.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from salova.errors import VideoOpenError, option_problem
from salova.video.decode import probe_video

MODES = ("auto", "reencode")  # reencode: even where a stream copy is possible


@dataclass
class Clip:
    path: Path
    start_s: float
    end_s: float
    mode: str  # "copy" or "reencode"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def parse_time(text: str, field: str) -> float:
    """Seconds from ``SS[.s]``, ``MM:SS[.s]`` or ``HH:MM:SS[.s]``; errors name the option ``field``."""
    try:
        parts = [float(p) for p in str(text).strip().split(":")]
        if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
            raise ValueError
    except ValueError:
        raise option_problem(field, f"{text!r}: expected seconds or [HH:]MM:SS") from None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def export_clip(video: str | os.PathLike, start_s: float, end_s: float, out: str | os.PathLike,
                mode: str = "auto") -> Clip:
    """Write [start_s, end_s) of ``video`` to ``out`` (container from its extension, e.g. .mp4, .mkv)."""
    if mode not in MODES:
        raise option_problem("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    path, probe = probe_video(video)
    duration = probe.duration_s or float("inf")
    if start_s < 0 or end_s <= start_s:
        raise option_problem("end", f"must be after the start ({start_s:g} s), got {end_s:g} s")
    if start_s >= duration:
        raise option_problem("start", f"{start_s:g} s is past the end of the video ({duration:.3f} s)")
    end_s = min(end_s, duration)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    half_frame = 0.5 / float(probe.fps)
    if mode == "auto" and _copy_allowed(path, start_s, end_s, duration, half_frame):
        _stream_copy(path, out, start_s, end_s, half_frame)
        return Clip(out, start_s, end_s, "copy")
    _reencode(path, out, start_s, end_s, half_frame)
    return Clip(out, start_s, end_s, "reencode")


def _times(stream) -> tuple[Fraction, int]:
    return stream.time_base, stream.start_time or 0


def _copy_allowed(path: Path, start_s: float, end_s: float, duration: float, tol: float) -> bool:
    """A keyframe at START, and a keyframe at END or END at the end of the video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb, t0 = _times(stream)
        container.seek(t0 + int(start_s / tb), stream=stream, backward=True, any_frame=False)
        keyframes = []
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float((packet.pts - t0) * tb)
            if packet.is_keyframe:
                keyframes.append(t)
            if t > end_s + tol:
                break
    starts_on_key = any(abs(k - start_s) <= tol for k in keyframes)
    ends_on_key = end_s >= duration - tol or any(abs(k - end_s) <= tol for k in keyframes)
    return starts_on_key and ends_on_key


def _stream_copy(path: Path, out: Path, start_s: float, end_s: float, tol: float) -> None:
    """Copy the packets of [start_s, end_s) of every video and audio stream, times shifted to start at 0."""
    try:
        with av.open(str(path)) as src, av.open(str(out), mode="w") as dst:
            video = src.streams.video[0]
            streams = [video, *src.streams.audio]
            outs = {s.index: dst.add_stream_from_template(s) for s in streams}
            tb, t0 = _times(video)
            src.seek(t0 + int(start_s / tb), stream=video, backward=True, any_frame=False)
            done: set[int] = set()  # streams past END
            for packet in src.demux(*streams):
                if packet.pts is None or packet.dts is None:
                    continue
                s = packet.stream
                stb, st0 = _times(s)
                t = float((packet.pts - st0) * stb)
                if s.index == video.index and packet.is_keyframe and t >= end_s - tol:
                    done.add(s.index)  # the next GOP starts at END: the clip's video is complete
                elif s.index != video.index and t >= end_s - tol:
                    done.add(s.index)
                if len(done) == len(streams):
                    break
                if s.index in done or t < start_s - tol:
                    continue
                offset = st0 + round(start_s / stb)  # this pts becomes 0
                packet.pts -= offset
                packet.dts -= offset
                packet.stream = outs[s.index]
                dst.mux(packet)
    except av.FFmpegError as err:
        raise VideoOpenError(f"{path.name}: stream copy failed ({err})") from err


def _reencode(path: Path, out: Path, start_s: float, end_s: float, tol: float) -> None:
    """Decode from the keyframe before START, encode the frames of [start_s, end_s) (H.264 + AAC)."""
    try:
        with av.open(str(path)) as src, av.open(str(out), mode="w") as dst:
            video = src.streams.video[0]
            video.thread_type = "AUTO"
            audio = src.streams.audio[0] if src.streams.audio else None
            rate = video.average_rate or video.guessed_rate or Fraction(30)
            vout = dst.add_stream("libx264", rate=rate)
            vout.width, vout.height = video.codec_context.width // 2 * 2, video.codec_context.height // 2 * 2
            vout.pix_fmt = "yuv420p"
            vout.options = {"preset": "veryfast", "crf": "18"}
            vout.codec_context.time_base = video.time_base
            aout = dst.add_stream("aac", rate=audio.codec_context.sample_rate) if audio is not None else None
            if aout is not None:
                aout.layout = audio.codec_context.layout
            _encode_range(src, dst, video, vout, start_s, end_s, tol)
            if audio is not None:
                _encode_range(src, dst, audio, aout, start_s, end_s, tol)
    except av.FFmpegError as err:
        raise VideoOpenError(f"{path.name}: re-encoding failed ({err})") from err


def _encode_range(src, dst, stream, out_stream, start_s: float, end_s: float, tol: float) -> None:
    """Decode ``stream`` from the keyframe before START; encode its frames in [start_s, end_s) into
    ``out_stream`` with times shifted to start at 0."""
    tb, t0 = _times(stream)
    src.seek(t0 + int(start_s / tb), stream=stream, backward=True, any_frame=False)
    for frame in src.decode(stream):
        if frame.pts is None:
            continue
        t = float((frame.pts - t0) * tb)
        if t < start_s - tol:
            continue
        if t >= end_s - tol:
            break
        frame.pts = frame.pts - t0 - round(start_s / tb)
        frame.time_base = tb
        if stream.type == "video":
            frame = frame.reformat(width=out_stream.width, height=out_stream.height, format="yuv420p")
        dst.mux(out_stream.encode(frame))
    dst.mux(out_stream.encode(None))
