"""The documented fusion rule (salova/retrieval/fusion.py) and the chunking rule, on hand-made scores."""

from __future__ import annotations

import numpy as np

from salova.retrieval.channels import fuse_hits, parse_channels
from salova.retrieval.fusion import RRF_K, fuse, ranks
from salova.speech.chunks import make_chunks
from salova.speech.transcribe import Line

NAN = np.nan


def test_one_channel_keeps_its_own_scores():
    scores, channel = fuse({"visual": np.array([0.2, 0.9, 0.5]), "speech": None})
    assert scores.tolist() == [0.2, 0.9, 0.5] and channel == ["visual"] * 3


def test_ranks_skip_segments_a_channel_has_no_score_for():
    assert ranks(np.array([0.1, NAN, 0.7])).tolist()[::2] == [2.0, 1.0]
    assert np.isnan(ranks(np.array([0.1, NAN, 0.7]))[1])


def test_a_confident_spoken_match_outranks_the_best_visual_segment():
    visual = np.array([0.30, 0.20, 0.10])  # the visual channel prefers segment 0
    speech = np.array([NAN, 0.05, 0.55])  # segment 2 says what was asked
    scores, channel = fuse({"visual": visual, "speech": speech})
    assert int(np.argmax(scores)) == 2 and channel[2] == "speech"
    assert np.isclose(scores[2], 1 / (RRF_K + 3) + 1 / (RRF_K + 1) + 1)
    assert channel[0] == "visual"


def test_weak_speech_that_stands_out_is_confident_but_not_a_weak_tie():
    visual = np.array([0.3, 0.2, 0.1])
    clear, _ = fuse({"visual": visual, "speech": np.array([0.05, NAN, 0.2])})  # 0.2 >= 1.5 x 0.05
    assert int(np.argmax(clear)) == 2
    tied, channel = fuse({"visual": visual, "speech": np.array([0.18, NAN, 0.2])})  # no clear winner
    assert int(np.argmax(tied)) == 0 and channel[0] == "visual"  # rank fusion: visual 1 + speech 2 wins


def test_library_hits_are_fused_by_the_same_rule():
    fused = fuse_hits([(1, 0, 0.3), (2, 4, 0.2)], [(2, 4, 0.6), (3, 1, 0.1)])
    assert fused[0][:2] == (2, 4) and fused[0][3] == "speech"
    assert {(v, i) for v, i, _, _ in fused} == {(1, 0), (2, 4), (3, 1)}


def test_channels_option_parses_and_defaults_to_all():
    assert parse_channels(None) == ("visual", "speech")
    assert parse_channels("speech, visual") == ("speech", "visual")


def test_chunks_join_a_few_sentences_but_never_cross_a_segment():
    lines = [Line(t, t + 2.0, f"line {i}") for i, t in enumerate([0.0, 3.0, 6.0, 9.0, 12.0, 21.0])]
    chunks = make_chunks(lines, segment_starts=[0.0, 20.0])
    assert [(c.segment, c.first_line, c.last_line) for c in chunks] == [(0, 0, 2), (0, 3, 4), (1, 5, 5)]
    assert chunks[0].text == "line 0 line 1 line 2" and (chunks[1].start_s, chunks[1].end_s) == (9.0, 14.0)
