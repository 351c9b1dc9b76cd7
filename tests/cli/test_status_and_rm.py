"""`salova status` (alias `ls`) reports what the index holds and why files failed; `salova rm` forgets entries
(files or whole folders) and never touches the files."""

from __future__ import annotations

import json

from salova.testing.videos import make_corrupt_middle, make_text_file, make_video
from tests.cli_helpers import cli, segments_table


def _library(tmp_path, capsys, clip_dir):
    lib = tmp_path / "lib"
    a = make_video(lib / "a.mp4", [(2.0, "bars"), (2.0, "noise")], fps=15, size=(96, 64))
    make_video(lib / "sub" / "b.mp4", [(3.0, (200, 30, 30))], fps=15, size=(96, 64))
    make_text_file(lib / "notes.mp4")
    src = make_video(tmp_path / "src.mp4", [(3.0, "bars"), (3.0, "noise"), (3.0, (30, 200, 40))], fps=15,
                     size=(96, 64))
    make_corrupt_middle(src, lib / "damaged.mp4")
    index = tmp_path / "idx"
    run = cli(capsys, "index", lib, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--quiet")
    assert run.code == 1  # notes.mp4 failed
    return lib, a, index


def test_status_reports_videos_hours_failures_size_models_and_last_run(capsys, tmp_path, clip_dir):
    lib, _, index = _library(tmp_path, capsys, clip_dir)
    run = cli(capsys, "status", "--index", index, "--json")
    assert run.code == 0, run.err
    s = run.json()
    assert (s["videos"], s["failed"]) == (3, 1)
    assert s["hours"] == round((4.0 + 3.0 + 9.0) / 3600, 3)
    assert s["segments"] == len(segments_table(index))
    (failure,) = s["failures"]
    assert set(failure) == {"path", "error"} and failure["path"].endswith("notes.mp4")
    assert "not a video" in failure["error"]
    assert [d["path"].rsplit("/", 1)[1] for d in s["damaged"]] == ["damaged.mp4"]
    assert s["bytes"] > 0 and s["models"]["encoder"] and s["last_run"].endswith("Z")
    text = cli(capsys, "ls", "--index", index)
    assert text.code == 0 and "3 videos" in text.out and "failed: " in text.out and "notes.mp4" in text.out
    assert json.loads(cli(capsys, "ls", "--index", index, "--json").out) == s


def test_rm_removes_files_and_folders_entries_and_keeps_the_files(capsys, tmp_path, clip_dir):
    lib, a, index = _library(tmp_path, capsys, clip_dir)
    run = cli(capsys, "rm", a.path, lib / "sub", "--index", index, "--json")
    assert run.code == 0, run.err
    assert [p.rsplit("/", 1)[1] for p in run.json()["removed"]] == ["a.mp4", "b.mp4"]
    assert a.path.exists() and (lib / "sub" / "b.mp4").exists()
    assert {r[0].rsplit("/", 1)[1] for r in segments_table(index)} == {"damaged.mp4"}
    missing = cli(capsys, "rm", a.path, "--index", index)
    assert missing.code == 1 and missing.err.strip() == f"salova: {a.path}: not in the index"
    s = cli(capsys, "status", "--index", index, "--json").json()
    assert (s["videos"], s["failed"]) == (1, 1)


def test_status_of_a_missing_index_is_one_line(capsys, tmp_path):
    run = cli(capsys, "status", "--index", tmp_path / "none")
    assert run.code == 1 and run.err.startswith("salova: error: no index at ") and run.err.count("\n") == 1
