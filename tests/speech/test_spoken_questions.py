"""End to end: spoken sentences at known times -> `salova index` -> `salova ask` finds them by meaning."""

from __future__ import annotations

import pytest

from tests.cli_helpers import cli
from tests.speech.conftest import SENTENCES


@pytest.mark.parametrize("start_s, sentence, question, segment", SENTENCES,
                         ids=["tomatoes", "train", "rain", "water"])
def test_ask_ranks_the_spoken_moment_first_and_points_at_its_words(capsys, talk, talk_index, start_s, sentence,
                                                                  question, segment):
    run = cli(capsys, "ask", talk, question, "--index", talk_index, "--json", "--quiet")
    assert run.code == 0, run.err
    result = run.json()
    best = min(result["moments"], key=lambda m: m["rank"])
    assert best["segment"] == segment
    assert best["channel"] == "speech"
    assert abs(best["at_s"] - start_s) <= 1.0, (best, start_s)
    assert best["transcript"]
    assert "speech" in result["mode"]


def test_text_output_quotes_what_was_said(capsys, talk, talk_index):
    run = cli(capsys, "ask", talk, SENTENCES[1][2], "--index", talk_index, "--top-k", "1", "--quiet")
    assert run.code == 0, run.err
    assert "[speech]" in run.out and "Berlin" in run.out


def test_visual_channel_alone_ignores_speech(capsys, talk, talk_index):
    run = cli(capsys, "ask", talk, SENTENCES[0][2], "--index", talk_index, "--channels", "visual", "--json",
              "--quiet")
    assert run.code == 0, run.err
    result = run.json()
    assert result["mode"] == "zero-shot"
    assert all(m["channel"] == "visual" and m["transcript"] is None for m in result["moments"])


def test_search_finds_the_spoken_moment_across_the_library(capsys, talk, talk_index):
    run = cli(capsys, "search", "drinking enough water", "--index", talk_index, "--json")
    assert run.code == 0, run.err
    top = run.json()["hits"][0]
    assert (top["segment"], top["channel"]) == (2, "speech")
    assert "water" in top["transcript"].lower()


def test_unknown_channel_is_a_usage_error(capsys, talk, talk_index):
    run = cli(capsys, "ask", talk, "anything", "--index", talk_index, "--channels", "smell")
    assert run.code == 2
    assert "--channels" in run.err
