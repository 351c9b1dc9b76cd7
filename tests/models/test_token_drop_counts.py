"""Dynamic token drop keeps hand-worked token counts (SPEC: ``ratio = max_drop * min(seq_len / 18000, 1)``,
keep ``max(1, int(seq_len * (1 - ratio)))``), worked out on paper, not re-derived from the formula in code."""

from __future__ import annotations

import pytest
import torch

from salova.models.connector import ConnectorConfig, STConnector, tokens_kept

# (seq_len, max_drop, ref_len) -> tokens kept, each worked by hand:
HAND_WORKED = [
    # ratio = 0.7 * 40/100 = 0.28; 40 * 0.72 = 28.8 -> 28
    ((40, 0.7, 100), 28),
    # 400 > 100: ratio = 0.7 * 1 = 0.7; 400 * 0.3 = 120
    ((400, 0.7, 100), 120),
    # ratio = 0.5 * 50/100 = 0.25; 50 * 0.75 = 37.5 -> 37 (truncated, not rounded)
    ((50, 0.5, 100), 37),
    # ratio = 0.4 * 3/100 = 0.012; 3 * 0.988 = 2.964 -> 2
    ((3, 0.4, 100), 2),
    # ratio = 0.9 * 1/2 = 0.45; 1 * 0.55 = 0.55 -> 0 -> at least 1
    ((1, 0.9, 2), 1),
    # no drop: everything kept
    ((100, 0.0, 100), 100),
    # the paper's reference length (default): 17,280 tokens = 120 frames x 144, stage-1.5 drop 0.7:
    # ratio = 0.7 * 17280/18000 = 0.672; 17280 * 0.328 = 5667.84 -> 5667 (docs/benchmarks.md)
    ((17280, 0.7), 5667),
    # at and beyond 18,000 tokens the full drop applies: 18000 * 0.3 = 5400; stage 2: 36000 * 0.6 = 21600
    ((18000, 0.7), 5400),
    ((36000, 0.4), 21600),
    # half the reference length, stage 2: ratio = 0.4 * 0.5 = 0.2; 9000 * 0.8 = 7200
    ((9000, 0.4), 7200),
]


@pytest.mark.parametrize("args,kept", HAND_WORKED, ids=[str(a) for a, _ in HAND_WORKED])
def test_tokens_kept_matches_hand_worked_counts(args, kept):
    assert tokens_kept(*args) == kept


def test_reference_length_defaults_to_the_papers_18000():
    assert ConnectorConfig().token_drop_ref_len == 18000
    assert tokens_kept(17280, 0.7) == tokens_kept(17280, 0.7, 18000) == 5667


def test_connector_drop_keeps_the_hand_worked_count_per_segment():
    """A padded batch of a 40-token and a 400-token segment, drop 0.7 at ref 100: 28 and 120 survive."""
    cfg = ConnectorConfig(dim=8, depth=1, heads=1, dim_head=8, num_latents=2, tokens_per_frame=1, max_frames=8,
                          max_token_drop=0.7, token_drop_ref_len=100)
    conn = STConnector(cfg).train()
    mask = torch.zeros(2, 400, dtype=torch.bool)
    mask[0, :40] = True
    mask[1] = True
    _, kept_mask = conn.drop_tokens(torch.randn(2, 400, 8), mask)
    assert kept_mask.sum(dim=1).tolist() == [28, 120]
