"""How channels' scores become one ranking (the documented fusion rule, docs/architecture.md).

Each channel ranks the segments it has a score for (1 = best; the speech channel ranks only segments where
something was said that matches at all). The fused score of a segment is

    fused = sum over channels c of 1 / (RRF_K + rank_c)          (reciprocal-rank fusion, k = 60)
          + 1 if the segment's speech match is confident

A speech match is confident when its score (``salova.speech.channel``: MiniLM cosine + BM25 bonus) is at least
SPEECH_CONFIDENT, or when it is the channel's best, at least SPEECH_FLOOR, and STANDOUT times the next best
segment's (a clear winner among weak matches: a paraphrase in other words, a mis-heard word).

Rank fusion needs no calibration between CLIP/router scores and sentence-embedding cosines; the confident-
speech tier keeps a clear spoken match from being outvoted by a visual channel that has nothing to say about
the question (zero-shot scores of unrelated frames still have a best one). A moment's ``channel`` is
``speech`` when its speech match is confident or ranks it better than the visual channel does, else
``visual``. With one channel, its own scores are returned unchanged.
"""

from __future__ import annotations

import numpy as np

RRF_K = 60.0  # reciprocal-rank fusion constant (Cormack et al. 2009)
# Calibrated on the spoken-needle benchmark (benchmarks/bench_speech.py): paraphrase matches scored 0.17-0.57,
# the best non-matching segment of a video 0.08-0.27.
SPEECH_CONFIDENT = 0.3  # speech score above which a spoken match is trusted first
SPEECH_FLOOR = 0.15  # ... or above this when it is the channel's clear best:
STANDOUT = 1.5  # ... at least this many times the next best segment's speech score


def confident_speech(speech: np.ndarray) -> np.ndarray:
    """[n] bool: which segments' speech matches are confident (NaN: no speech score)."""
    s = np.nan_to_num(np.asarray(speech, np.float64), nan=-1.0)
    out = s >= SPEECH_CONFIDENT
    if len(s):
        order = np.argsort(-s, kind="stable")
        top = s[order[0]]
        runner_up = s[order[1]] if len(s) > 1 else 0.0
        out[order[0]] |= top >= SPEECH_FLOOR and top >= STANDOUT * max(runner_up, 0.0)
    return out


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of the non-NaN scores (best = 1); NaN stays NaN."""
    out = np.full(len(scores), np.nan)
    valid = np.flatnonzero(~np.isnan(scores))
    order = valid[np.argsort(-scores[valid], kind="stable")]
    out[order] = np.arange(1, len(order) + 1)
    return out


def fuse(channels: dict[str, np.ndarray | None]) -> tuple[np.ndarray, list[str]]:
    """Channel name -> scores [n] (NaN: no score for that segment; None: channel off) -> (fused [n], channel
    of each segment)."""
    present = {c: np.asarray(s, np.float64) for c, s in channels.items() if s is not None}
    if not present:
        raise ValueError("no channel has scores")
    n = len(next(iter(present.values())))
    if len(present) == 1:
        (name, scores), = present.items()
        return np.nan_to_num(scores, nan=0.0), [name] * n
    rk = {c: ranks(s) for c, s in present.items()}
    fused = np.zeros(n)
    for r in rk.values():
        fused += np.where(np.isnan(r), 0.0, 1.0 / (RRF_K + np.nan_to_num(r, nan=0.0)))
    speech = present.get("speech")
    confident = np.zeros(n, bool) if speech is None else confident_speech(speech)
    fused += confident
    best = []
    for i in range(n):
        if confident[i]:
            best.append("speech")
            continue
        by_rank = sorted((rk[c][i], c) for c in rk if not np.isnan(rk[c][i]))
        best.append(by_rank[0][1] if by_rank else "visual")
    return fused, best
