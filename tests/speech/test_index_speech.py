"""`salova index` and the speech pass: what is stored, incrementally, and what no sound gives."""

from __future__ import annotations

import json

import duckdb
import numpy as np

from salova.testing.speech import SPEECH_RATE
from salova.testing.videos import make_video
from tests.cli_helpers import cli
from tests.speech.conftest import SCENES, SENTENCES


def _rows(index, sql):
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_index_stores_lines_words_and_chunks_with_word_times(talk_index):
    lines = _rows(talk_index, "SELECT start_s, text, segment FROM transcripts ORDER BY line")
    assert len(lines) == len(SENTENCES)
    for (start, text, segment), (t, sentence, _, seg) in zip(lines, SENTENCES, strict=True):
        assert abs(start - t) <= 1.0 and segment == seg
        assert sentence.split()[-1].strip(".").lower() in text.lower()  # the last word is heard right
    words = _rows(talk_index, "SELECT start_s, end_s, word FROM words ORDER BY line, idx")
    assert len(words) >= 30 and all(s <= e for s, e, _ in words)
    chunks = _rows(talk_index, "SELECT segment, first_line, last_line FROM speech_chunks ORDER BY chunk")
    assert chunks == [(0, 0, 0), (1, 1, 2), (2, 3, 3)]  # two sentences share segment 1's chunk
    speech = json.loads(_rows(talk_index, "SELECT value FROM meta WHERE key = 'speech'")[0][0])
    assert speech["whisper"] == "packaged:whisper" and speech["text_encoder"] == "packaged:all-MiniLM-L6-v2"
    assert speech["dim"] == 384


def test_adding_speech_to_an_index_transcribes_without_re_encoding(capsys, tmp_path, talk, clip_dir):
    index = tmp_path / "index"
    first = cli(capsys, "index", talk, "--index", index, "--encoder", clip_dir, "--no-speech", "--json")
    assert first.code == 0 and first.json()["indexed"] == 1
    assert _rows(index, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'transcripts'") == [(0,)]
    video_id = _rows(index, "SELECT id FROM videos")[0][0]

    second = cli(capsys, "index", talk, "--index", index, "--encoder", clip_dir, "--json")
    assert second.code == 0 and second.json()["unchanged"] == 1  # the visual pass did nothing
    assert _rows(index, "SELECT id FROM videos") == [(video_id,)]
    assert _rows(index, "SELECT count(*) FROM transcripts WHERE video_id = ?".replace("?", str(video_id))) == [
        (len(SENTENCES),)]


def test_videos_without_sound_index_with_an_empty_transcript(capsys, tmp_path, clip_dir):
    mute = make_video(tmp_path / "v" / "mute.mp4", SCENES[:1], fps=10).path
    make_video(tmp_path / "v" / "silent.mp4", SCENES[:1], fps=10, audio=np.zeros(10 * SPEECH_RATE, np.float32),
               audio_rate=SPEECH_RATE)
    index = tmp_path / "index"
    run = cli(capsys, "index", tmp_path / "v", "--index", index, "--encoder", clip_dir, "--json")
    assert run.code == 0, run.err
    assert run.json()["indexed"] == 2 and not run.json()["failures"]
    notes = sorted(n for (n,) in _rows(index, "SELECT note FROM speech_videos"))
    assert notes == ["no audio track", "silent"]
    assert _rows(index, "SELECT count(*) FROM transcripts") == [(0,)]
    out = cli(capsys, "transcript", mute, "--index", index)
    assert out.code == 0 and out.out == ""
    ask = cli(capsys, "ask", mute, "what is said?", "--index", index, "--json", "--quiet")
    assert ask.code == 0 and ask.json()["mode"] == "zero-shot"  # no speech anywhere: visual only


def test_a_language_the_english_only_whisper_cannot_hear_is_a_usage_error(capsys, tmp_path, talk, clip_dir):
    run = cli(capsys, "index", talk, "--index", tmp_path / "index", "--encoder", clip_dir, "--language", "fr",
              "--quiet")
    assert run.code == 2 and "--language" in run.err and "English-only" in run.err
