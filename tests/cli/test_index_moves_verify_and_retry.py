"""A library over months, from the command line: moved files keep their entries with no model work, --verify
catches an edit the cheap check misses, failed files are not decoded again unless --retry-failed."""

from __future__ import annotations

import os
import shutil

from salova.testing.videos import make_random_bytes, make_video
from tests.cli_helpers import cli, segments_table

SOURCE = [(2.0, "bars"), (2.0, "noise")]


def _common(tmp_path, clip_dir):
    return ["--index", tmp_path / "idx", "--encoder", clip_dir, "--device", "cpu", "--json"]


def test_a_moved_file_keeps_its_entry_with_no_model_work(capsys, tmp_path, clip_dir, monkeypatch):
    lib = tmp_path / "lib"
    a = make_video(lib / "a.mp4", SOURCE, fps=15, size=(96, 64))
    make_video(lib / "b.mp4", [(2.0, (200, 30, 30))], fps=15, size=(96, 64))
    common = _common(tmp_path, clip_dir)
    first = cli(capsys, "index", lib, *common).json()
    assert first["indexed"] == 2
    before = [r[1:] for r in segments_table(tmp_path / "idx") if r[0].endswith("a.mp4")]

    (lib / "sub").mkdir()
    shutil.move(a.path, lib / "sub" / "renamed.mp4")
    from salova.pipeline import encode

    def no_decoding(*args, **kwargs):
        raise AssertionError("a moved file was decoded")

    monkeypatch.setattr(encode.Indexer, "scan", no_decoding)
    run = cli(capsys, "index", lib, *common).json()
    assert (run["moved"], run["unchanged"], run["indexed"], run["failed"]) == (1, 1, 0, 0)
    (moved,) = [f for f in run["files"] if f["status"] == "moved"]
    assert moved["moved_from"] == str(a.path.resolve()) and moved["path"].endswith("sub/renamed.mp4")
    rows = segments_table(tmp_path / "idx")
    assert not any(r[0].endswith("/a.mp4") for r in rows)
    assert [r[1:] for r in rows if r[0].endswith("renamed.mp4")] == before
    again = cli(capsys, "index", lib, *common, "--prune").json()
    assert (again["unchanged"], again["moved"], again["pruned"]) == (2, 0, 0)


def test_prune_drops_the_entry_of_a_deleted_file_but_not_of_a_moved_one(capsys, tmp_path, clip_dir):
    lib = tmp_path / "lib"
    a = make_video(lib / "a.mp4", SOURCE, fps=15, size=(96, 64))
    b = make_video(lib / "b.mp4", [(2.0, (200, 30, 30))], fps=15, size=(96, 64))
    common = _common(tmp_path, clip_dir)
    cli(capsys, "index", lib, *common)
    os.remove(b.path)
    shutil.move(a.path, lib / "c.mp4")
    run = cli(capsys, "index", lib, *common, "--prune").json()
    assert (run["moved"], run["pruned"], run["indexed"]) == (1, 1, 0)
    assert {r[0].rsplit("/", 1)[1] for r in segments_table(tmp_path / "idx")} == {"c.mp4"}


def test_verify_catches_an_edit_that_keeps_size_and_mtime(capsys, tmp_path, clip_dir):
    video = make_video(tmp_path / "lib" / "a.mp4", SOURCE, fps=15, size=(96, 64))
    common = _common(tmp_path, clip_dir)
    cli(capsys, "index", video.path, *common)
    st = video.path.stat()
    data = bytearray(video.path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one byte changed in place
    video.path.write_bytes(bytes(data))
    os.utime(video.path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the mtime put back
    assert cli(capsys, "index", video.path, *common).json()["unchanged"] == 1  # the cheap check misses it
    verified = cli(capsys, "index", video.path, *common, "--verify").json()
    assert verified["updated"] == 1
    assert cli(capsys, "index", video.path, *common, "--verify").json()["unchanged"] == 1


def test_failed_files_are_not_decoded_again_unless_retry_failed(capsys, tmp_path, clip_dir, monkeypatch):
    (tmp_path / "lib").mkdir()
    bad = make_random_bytes(tmp_path / "lib" / "broken.mp4")
    common = _common(tmp_path, clip_dir)
    first = cli(capsys, "index", bad, *common)
    assert first.code == 1 and first.json()["failed"] == 1
    from salova.video import backends

    opened = []
    real = backends.probe_video
    monkeypatch.setattr(backends, "probe_video", lambda p: opened.append(p) or real(p))
    again = cli(capsys, "index", bad, *common)
    summary = again.json()
    assert again.code == 1 and summary["failed"] == 1 and summary["not_retried"] == 1
    assert summary["failures"] == first.json()["failures"] and opened == []
    plain = cli(capsys, "index", bad, *common[:-1])
    assert "not tried again (--retry-failed)" in plain.err
    retried = cli(capsys, "index", bad, *common, "--retry-failed").json()
    assert retried["failed"] == 1 and retried["not_retried"] == 0 and opened
