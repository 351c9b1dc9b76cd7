"""`salova index --dry-run` reports the files to index, their duration and a time measured here, and writes no index."""

from __future__ import annotations

from salova.testing.videos import make_video
from tests.cli_helpers import cli


def test_dry_run_estimates_and_writes_nothing(capsys, tmp_path, clip_dir):
    for i in range(2):
        make_video(tmp_path / "v" / f"{i}.mp4", [(2.0, (200, 30 * i, 30)), (1.0, "noise")], fps=10, size=(64, 48))
    index = tmp_path / "idx"
    run = cli(capsys, "index", tmp_path / "v", "--index", index, "--encoder", clip_dir, "--device", "cpu",
              "--dry-run", "--json")
    assert run.code == 0, run.err
    est = run.json()
    assert (est["files"], est["unchanged"]) == (2, 0)
    assert abs(est["video_s"] - 6.0) < 0.5
    assert est["scan_s_per_video_s"] > 0 and est["encode_s_per_frame"] > 0 and est["estimate_s"] > 0
    assert not index.exists()

    assert cli(capsys, "index", tmp_path / "v", "--index", index, "--encoder", clip_dir, "--device", "cpu",
               "--quiet").code == 0
    again = cli(capsys, "index", tmp_path / "v", "--index", index, "--encoder", clip_dir, "--dry-run", "--json")
    assert (again.json()["files"], again.json()["unchanged"]) == (0, 2)
