"""From retrieved moments to an ``AnswerRequest``: which stored frames each moment shows, decoded again.

Frame picking (``pick_frame_times``), within a total budget of ``max_frames``:

- every moment gets ``max_frames // K`` frames, the best-ranked ones one more while the remainder lasts;
  with fewer frames than moments, only the best-ranked moments get one frame each;
- a moment's frames are chosen among the 1-FPS times the index stored for its segment: its best-matching
  frame ``at_s`` first, then times spread evenly over the segment;
- the chosen times are decoded again from the video file (``salova.video.seek.frames_at``): the frame the
  model reads is the frame the index scored, at the time the index stored.

Speech: ``transcript_for`` asks the store for the timed lines inside each moment. Nothing indexes speech yet;
a store that gains ``transcript(video_id, start_s, end_s) -> [(start_s, end_s, text)]`` feeds every answerer
with no change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from salova.answerers.base import AnswerRequest, MomentInput, TranscriptLine
from salova.errors import option_problem
from salova.video.seek import frames_at

# Frames are shrunk to this longer side before a model sees them (models resize again; this bounds memory
# and request size, e.g. base64 images sent to an endpoint).
FRAME_MAX_SIDE = 448


def frame_quota(ranks: Sequence[int], max_frames: int) -> dict[int, int]:
    """Frames per moment (by rank) within ``max_frames``; best ranks first when frames are short."""
    if max_frames < 1:
        raise option_problem("max_frames", f"must be >= 1, got {max_frames}")
    order = sorted(ranks)
    if not order:
        return {}
    base, extra = divmod(max_frames, len(order))
    return {r: base + (i < extra) for i, r in enumerate(order)}


def spread(times: np.ndarray, at_s: float, n: int) -> list[float]:
    """``n`` of a segment's stored ``times``: the one nearest ``at_s``, then evenly spread ones; sorted."""
    times = np.asarray(times, np.float64)
    if n <= 0 or not len(times):
        return []
    if n >= len(times):
        return [float(t) for t in times]
    best = int(np.argmin(np.abs(times - at_s)))
    chosen = [best]
    for i in np.linspace(0, len(times) - 1, n).round().astype(int):
        if len(chosen) == n:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    for i in range(len(times)):  # linspace collided with ``best``: fill from the start
        if len(chosen) == n:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(float(times[i]) for i in chosen)


def pick_frame_times(moments, segment_times: Sequence[np.ndarray], max_frames: int) -> dict[int, list[float]]:
    """Rank -> the stored frame times that moment shows (see the module docstring)."""
    quota = frame_quota([m.rank for m in moments], max_frames)
    out = {}
    for m in moments:
        times = segment_times[m.segment] if m.segment < len(segment_times) else np.empty(0)
        if not len(times):
            times = np.asarray([m.at_s])
        out[m.rank] = spread(times, m.at_s, quota[m.rank])
    return out


def transcript_for(store, video_id: int, start_s: float, end_s: float) -> list[TranscriptLine]:
    """The timed speech lines inside [start_s, end_s) when the store has a transcript; none otherwise."""
    lines = getattr(store, "transcript", None)
    if lines is None:
        return []
    return [TranscriptLine(float(s), float(e), str(t)) for s, e, t in lines(video_id, start_s, end_s)]


def build_request(
    video: Path, question: str, moments, segment_times: Sequence[np.ndarray], *, max_frames: int,
    with_frames: bool, transcripts: dict[int, list[TranscriptLine]] | None = None,
    duration_s: float | None = None, max_side: int = FRAME_MAX_SIDE,
) -> AnswerRequest:
    """The request for ``moments`` (retrieval ``Moment``s, time order): picked frame times, their decoded
    images when ``with_frames``, and each moment's transcript lines (by rank)."""
    picked = pick_frame_times(moments, segment_times, max_frames) if with_frames else {}
    all_times = [t for m in moments for t in picked[m.rank]] if with_frames else []
    images = iter(frames_at(video, all_times, max_side=max_side)) if all_times else None
    inputs = []
    for m in moments:
        times = picked.get(m.rank, [])
        frames = [next(images) for _ in times] if images is not None else []
        inputs.append(MomentInput(m.rank, m.segment, m.start_s, m.end_s, m.at_s, m.score, times, frames,
                                  list((transcripts or {}).get(m.rank, []))))
    return AnswerRequest(Path(video).name, question, inputs, duration_s)
