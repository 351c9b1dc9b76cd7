"""The similarity loss's margin term (SPEC: ``mean(max(0, 0.2 - (s_pos - s_neg)))`` over r random
positive/negative pairs, r ~ U{1..min(#pos, #neg)}) takes the values worked out by hand, not just "> 0"."""

from __future__ import annotations

import pytest
import torch

from salova.models.loss import similarity_loss


@pytest.mark.parametrize(
    "pos,neg,margin",
    [
        (0.1, 0.2, 0.3),  # the positive loses by 0.1: 0.2 - (0.1 - 0.2) = 0.3
        (1.0, 0.9, 0.1),  # wins by 0.1, less than the 0.2 margin: 0.2 - 0.1 = 0.1
        (1.0, 0.5, 0.0),  # wins by 0.5 > 0.2: nothing
        (0.0, 0.0, 0.2),  # a tie costs the whole margin
    ],
)
def test_one_pair_margin_is_worked_by_hand(pos, neg, margin):
    for seed in range(3):  # one positive, one negative: r = 1 whatever the draw
        _, got = similarity_loss(torch.tensor([pos, neg]), torch.tensor([1, 0]),
                                 generator=torch.Generator().manual_seed(seed))
        assert got.item() == pytest.approx(margin, abs=1e-6)


def test_random_pairs_give_exactly_the_hand_worked_means():
    """Positives 0.1, 2.5; negatives 0.2, -2.0, 0.0. Hinges with 0.1: 0.3, 0, 0.1; with 2.5: always 0.
    r = 1: one hinge -> {0.3, 0.1, 0}; r = 2: 0.1's hinge and a zero, halved -> {0.15, 0.05, 0}."""
    scores = torch.tensor([0.1, 2.5, 0.2, -2.0, 0.0])
    labels = torch.tensor([1, 1, 0, 0, 0])
    seen = set()
    for seed in range(200):
        _, margin = similarity_loss(scores, labels, generator=torch.Generator().manual_seed(seed))
        seen.add(round(margin.item(), 6))
    assert seen == {0.0, 0.05, 0.1, 0.15, 0.3}
