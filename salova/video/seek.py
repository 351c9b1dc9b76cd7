"""Frames at given times: seek to the keyframe before each run of times and decode forward (PyAV).

Answerers and reports read a handful of frames of an indexed video again, at the 1-FPS times the index
stored. Decoding the whole file for that would cost as much as indexing it; seeking costs a GOP per run of
nearby times. Each requested time gets the decoded frame whose presentation time is closest to it, so a time
the index stored (a real frame's time) comes back as exactly that frame.

Images are RGB, display orientation (the stream's rotation applied), optionally shrunk so that their longer
side is at most ``max_side`` pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import av
import numpy as np

from salova.errors import VideoOpenError
from salova.video.decode import probe_video

# Times closer than this share one seek: decoding forward through a gap is cheaper than a new seek then.
SEEK_GAP_S = 4.0


def frames_at(path: str | os.PathLike, times: Sequence[float], max_side: int | None = None) -> list[np.ndarray]:
    """One image per requested time (in the order given): [H, W, 3] uint8 RGB, the frame nearest each time."""
    path, probe = probe_video(path)
    wanted = sorted(set(float(t) for t in times))
    if not wanted:
        return []
    found: dict[float, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for run in _runs(wanted):
                found.update(_decode_run(container, stream, run, max_side))
    except av.FFmpegError as err:
        raise VideoOpenError(f"{path.name}: cannot decode frames ({err})") from err
    missing = [t for t in wanted if t not in found]
    if missing:
        raise VideoOpenError(f"{path.name}: no frame near {missing[0]:.3f} s")
    k = probe.rotation // 90
    return [np.ascontiguousarray(np.rot90(found[float(t)], k=k)) if k else found[float(t)] for t in times]


def _runs(times: list[float]) -> Iterator[list[float]]:
    """Sorted times -> groups in which consecutive times are less than SEEK_GAP_S apart."""
    run = [times[0]]
    for t in times[1:]:
        if t - run[-1] > SEEK_GAP_S:
            yield run
            run = []
        run.append(t)
    yield run


def _decode_run(container, stream, run: list[float], max_side: int | None) -> dict[float, np.ndarray]:
    """Seek before ``run[0]`` and decode forward until every time in ``run`` has its nearest frame."""
    tb = stream.time_base
    start = stream.start_time or 0
    container.seek(max(start, start + int(run[0] / tb)), stream=stream, backward=True, any_frame=False)
    out: dict[float, np.ndarray] = {}
    pending = list(run)
    prev: tuple[float, av.VideoFrame] | None = None
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        t = max(0.0, float((frame.pts - start) * tb))
        while pending and t >= pending[0]:
            # The nearest of this frame and the one before it.
            best = frame if prev is None or abs(t - pending[0]) <= abs(prev[0] - pending[0]) else prev[1]
            out[pending.pop(0)] = _to_rgb(best, max_side)
        if not pending:
            break
        prev = (t, frame)
    if pending and prev is not None:  # times past the last frame: the last frame
        for t in pending:
            out[t] = _to_rgb(prev[1], max_side)
    return out


def _to_rgb(frame: av.VideoFrame, max_side: int | None) -> np.ndarray:
    w, h = frame.width, frame.height
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(2, round(w * scale)), max(2, round(h * scale))
        return frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
    return frame.to_ndarray(format="rgb24")
