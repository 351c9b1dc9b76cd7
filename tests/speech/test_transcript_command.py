"""`salova transcript VIDEO`: the stored transcript as txt, srt, vtt or json, from the index alone."""

from __future__ import annotations

import json

import pytest

from salova.answerers import transcript_for
from salova.retrieval.channels import open_speech
from tests.cli_helpers import cli
from tests.speech.conftest import SENTENCES


def test_transcript_formats_carry_the_index_times(capsys, talk, talk_index):
    txt = cli(capsys, "transcript", talk, "--index", talk_index)
    assert txt.code == 0 and txt.out.splitlines()[1].startswith("[00:00:11] Our train")
    srt = cli(capsys, "transcript", talk, "--index", talk_index, "--format", "srt").out
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "Berlin" in srt
    vtt = cli(capsys, "transcript", talk, "--index", talk_index, "--format", "vtt").out
    assert vtt.startswith("WEBVTT\n\n00:00:")
    doc = json.loads(cli(capsys, "transcript", talk, "--index", talk_index, "--format", "json").out)
    assert len(doc["lines"]) == len(SENTENCES)
    first_word = doc["lines"][1]["words"][0]
    assert first_word["word"] == "Our" and abs(first_word["start_s"] - SENTENCES[1][0]) <= 1.0


def test_transcript_of_an_unindexed_video_or_a_bad_format_is_one_line(capsys, tmp_path, talk, talk_index):
    assert cli(capsys, "transcript", talk, "--index", talk_index, "--format", "doc").code == 2
    missing = cli(capsys, "transcript", tmp_path / "other.mp4", "--index", talk_index)
    assert missing.code == 2 and "not in the index" in missing.err


@pytest.mark.parametrize("segment, expected", [(1, ["Our train", "Tomorrow it will rain"]), (0, ["The chef"])])
def test_answerers_get_the_moment_transcript_lines(talk_index, segment, expected):
    channel = open_speech(talk_index, "cpu")
    lines = transcript_for(channel, 1, segment * 10.0, segment * 10.0 + 10.0)
    assert [ln.text[: len(e)] for ln, e in zip(lines, expected, strict=True)] == expected
    assert all(segment * 10.0 <= ln.start_s < ln.end_s for ln in lines)
