"""The channels a question is scored by (visual, speech) and how their answers become moments.

``Session`` calls these; the fusion rule itself is ``fusion.py``. The speech channel takes part when the
index holds speech (``salova index`` without ``--no-speech``) and ``channels`` includes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from salova.errors import option_problem
from salova.retrieval.fusion import fuse, ranks
from salova.retrieval.results import Moment

CHANNELS = ("visual", "speech")
QUOTE_CHARS = 80  # text output quotes this much of a speech match


def parse_channels(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"visual,speech"`` or a sequence -> the channel names (default: all)."""
    if value is None:
        return CHANNELS
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [n for n in names if n not in CHANNELS]
    if bad or not names:
        raise option_problem("channels", f"{value!r}: expected a comma-separated subset of {','.join(CHANNELS)}")
    return tuple(dict.fromkeys(names))


def open_speech(index_dir: Path, device: str):
    """The speech channel of an index (its text encoder loaded), or None when the index holds no speech."""
    from salova.speech import tables
    from salova.speech.channel import SpeechChannel
    from salova.speech.models import TextEncoder
    from salova.store.layout import DB_FILE

    if not (index_dir / DB_FILE).is_file():
        return None
    fingerprint, _ = tables.read_fingerprint(index_dir)
    if fingerprint is None:
        return None
    return SpeechChannel(index_dir, TextEncoder(fingerprint.text_encoder, device=device))


def score_segments(visual: np.ndarray | None, speech: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """Fused scores [n] and each segment's channel (``fusion.fuse``)."""
    return fuse({"visual": visual, "speech": speech})


def speech_moment(moment: Moment, speech, video_id: int, question: str) -> Moment:
    """A speech-found moment points at its words: ``at_s`` = the first word of the closest line; every moment
    of a video with speech carries what is said in it (the matching line first)."""
    said = speech.transcript(video_id, moment.start_s, moment.end_s)
    if not said:
        return moment
    lines = [t for _, _, t in said]
    if moment.channel == "speech":
        match = speech.match(video_id, moment.start_s, moment.end_s, question)
        if match is not None:
            moment.at_s = min(max(match[0], moment.start_s), moment.end_s)
            lines = [match[1]] + [t for t in lines if t != match[1]]
    moment.transcript = " ".join(lines)
    return moment


def quote(text: str | None) -> str:
    """A short quote for text output."""
    if not text:
        return ""
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1].rstrip() + "…"


def fuse_hits(visual: list[tuple[int, int, float]], speech: list[tuple[int, int, float]]
              ) -> list[tuple[int, int, float, str]]:
    """Library search: the same rule over two hit lists (video_id, segment, score) -> fused, best first."""
    if not speech:
        return [(v, i, s, "visual") for v, i, s in visual]
    keys = list(dict.fromkeys([(v, i) for v, i, _ in visual] + [(v, i) for v, i, _ in speech]))
    pos = {k: n for n, k in enumerate(keys)}
    cols = {}
    for name, hits in (("visual", visual), ("speech", speech)):
        col = np.full(len(keys), np.nan)
        for v, i, s in hits:
            col[pos[(v, i)]] = s
        cols[name] = col if hits else None
    fused, channel = fuse(cols)
    order = np.argsort(-fused, kind="stable")
    return [(*keys[j], float(fused[j]), channel[j]) for j in order]


__all__ = ["CHANNELS", "fuse_hits", "open_speech", "parse_channels", "quote", "ranks", "score_segments",
           "speech_moment"]
