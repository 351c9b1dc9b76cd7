"""Scorers: every segment of a video gets a relevance score for a question, behind one interface.

A scorer reads only the index (never the video): the SR-Router reads the stored routing tokens, zero-shot
scoring the stored joint-space (CLIP/SigLIP) segment embeddings. A new channel (e.g. speech) is one more
class with the same two methods; ``Session`` does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from salova.models.encoder import TextFeatures
from salova.models.salova import Salova
from salova.models.zero_shot import zero_shot_scores
from salova.runtime import Models
from salova.store.store import IndexStore


@dataclass
class Query:
    """A question encoded once: the text encoder's features and its joint-space vector [e]."""

    text: str
    features: TextFeatures
    joint: np.ndarray  # [e] float32, L2-normalised by the encoder


class Scorer(Protocol):
    mode: str  # reported in results: "router", "zero-shot"

    def score_videos(self, store: IndexStore, video_ids: list[int], query: Query) -> dict[int, np.ndarray]:
        """Scores [n_v] for every segment of each video (videos with nothing to score are left out)."""
        ...


class ZeroShotScorer:
    """Cosine of each stored segment embedding with the question's joint-space vector."""

    mode = "zero-shot"

    def score_videos(self, store: IndexStore, video_ids: list[int], query: Query) -> dict[int, np.ndarray]:
        out = {}
        for v in video_ids:
            joint = store.load_joint(v)
            if len(joint):
                out[v] = zero_shot_scores(joint, query.joint)
        return out


class RouterScorer:
    """The SR-Router over each video's routing tokens: one padded batch for all the videos."""

    mode = "router"

    def __init__(self, salova: Salova):
        self.salova = salova

    def score_videos(self, store: IndexStore, video_ids: list[int], query: Query) -> dict[int, np.ndarray]:
        routing = {v: r for v in video_ids if (r := store.load_routing(v)) is not None and len(r)}
        if not routing:
            return {}
        vids = list(routing)
        n = max(len(routing[v]) for v in vids)
        d = np.asarray(routing[vids[0]]).shape[1]
        batch = np.zeros((len(vids), n, d), np.float32)  # [b, n, d], segments padded to the longest video
        mask = np.zeros((len(vids), n), bool)  # [b, n] True = a real segment
        for b, v in enumerate(vids):
            r = np.asarray(routing[v], np.float32)
            batch[b, : len(r)], mask[b, : len(r)] = r, True
        with torch.inference_mode():
            scores = self.salova.score(torch.from_numpy(batch), query.features, torch.from_numpy(mask))
        scores = scores.float().cpu().numpy()
        return {v: scores[b, : int(mask[b].sum())] for b, v in enumerate(vids)}


def scorer_for(models: Models) -> Scorer:
    """The router with a trained checkpoint, zero-shot otherwise."""
    return RouterScorer(models.salova) if models.trained else ZeroShotScorer()


def best_frame_time(times: np.ndarray, frame_joint: np.ndarray, query: Query, default: float) -> float:
    """``at_s``: the time of the segment's 1-FPS frame closest to the question in the joint space."""
    if not len(times):
        return default
    return float(times[int(np.argmax(np.asarray(frame_joint, np.float32) @ query.joint))])
