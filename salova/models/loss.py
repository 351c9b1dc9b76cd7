"""Similarity loss that trains the SR-Router (paper Eq. 1): point-wise BCE + score margin loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SimilarityLossConfig:
    margin: float = 0.2  # delta in Eq. 1
    weight: float = 1.0  # weight added to the LM loss (stage 1: 5.0, later 1.0)


def similarity_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE over all segments plus a margin term over random positive/negative pairs, for one video.

    Args:
        scores: [n] router logits of one video's segments.
        labels: [n] bool or {0, 1}: relevant segments.
        margin: delta; the margin term is zero once every positive beats every negative by more.
        generator: for the pair sampling (r ~ U{1..min(#pos, #neg)} pairs, sampled without replacement).
    Returns:
        (bce, margin_term) scalars; the similarity loss is their sum.
    """
    labels = labels.to(scores.dtype)
    bce = F.binary_cross_entropy_with_logits(scores, labels)
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return bce, scores.new_zeros(())
    hi = min(len(pos), len(neg))
    r = int(torch.randint(1, hi + 1, (1,), generator=generator))
    p = pos[torch.randperm(len(pos), generator=generator)[:r]]
    q = neg[torch.randperm(len(neg), generator=generator)[:r]]
    return bce, F.relu(margin - (p - q)).mean()


def batch_similarity_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    segment_mask: torch.Tensor,
    margin: float = 0.2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over a batch of videos: scores/labels/segment_mask [b, n] (padding masked out)."""
    parts = [
        similarity_loss(scores[i][segment_mask[i]], labels[i][segment_mask[i]], margin, generator)
        for i in range(scores.shape[0])
    ]
    return torch.stack([p[0] for p in parts]).mean(), torch.stack([p[1] for p in parts]).mean()
