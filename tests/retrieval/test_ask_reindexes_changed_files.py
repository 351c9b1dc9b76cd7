"""`salova ask` indexes the video first when it is new or changed (README), and only then: an unchanged or
merely touched file is answered from the index without decoding; new content is decoded once and replaces the
old segments."""

from __future__ import annotations

import os
import time

from salova.testing.videos import make_video
from tests.cli_helpers import cli
from tests.decode_counter import DecodeCounter
from tests.index_reader import RawIndex


def test_ask_reindexes_a_changed_file_and_only_then(capsys, monkeypatch, tmp_path, clip_dir):
    path = tmp_path / "clip.mp4"
    make_video(path, [(2.0, (230, 30, 30)), (2.0, "noise")], fps=15, size=(96, 64))
    index = tmp_path / "idx"
    counter = DecodeCounter(monkeypatch)

    def ask():
        counter.reset()
        run = cli(capsys, "ask", path, "a red frame", "--index", index, "--encoder", clip_dir, "--device", "cpu",
                  "--json", "--top-k", "10")
        assert run.code == 0, run.err
        return sorted((m["start_s"], m["end_s"]) for m in run.json()["moments"]), dict(counter.opens)

    key = str(path.resolve())
    moments, opens = ask()  # new: indexed first
    assert moments == [(0.0, 2.0), (2.0, 4.0)] and opens == {key: 1}
    first_id = RawIndex(index).videos[key][0]

    assert ask() == ([(0.0, 2.0), (2.0, 4.0)], {})  # unchanged: no decoding

    now = time.time_ns()
    os.utime(path, ns=(now, now + 10**9))  # touched, same bytes: still unchanged (content hash)
    assert ask() == ([(0.0, 2.0), (2.0, 4.0)], {})

    make_video(path, [(1.0, "checker"), (1.0, (30, 30, 230)), (3.0, "bars")], fps=15, size=(96, 64))
    moments, opens = ask()  # changed: re-indexed, the answer is about the new content
    assert moments == [(0.0, 1.0), (1.0, 2.0), (2.0, 5.0)] and opens == {key: 1}
    raw = RawIndex(index)
    assert raw.videos[key] == (raw.videos[key][0], "indexed") and raw.videos[key][0] != first_id  # a new id
    assert [(s.start_frame, s.end_frame) for s in raw.segments(path)] == [(0, 15), (15, 30), (30, 75)]
