"""`salova index` from the command line: a corrupt middle is indexed to the end with its gaps in the row and
the summary; stderr carries only salova's lines; changed settings re-index; a differing --latent-dtype is one
clear error."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

from salova.testing.videos import make_corrupt_middle, make_video
from tests.cli_helpers import ROOT, cli, cli_env

SOURCE = [(3.0, "bars"), (3.0, "noise"), (3.0, (30, 200, 40))]


def _videos(index):
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM videos ORDER BY path")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture()
def corrupt(tmp_path):
    src = make_video(tmp_path / "src" / "plain.mp4", SOURCE, fps=15, size=(96, 64))
    (tmp_path / "lib").mkdir()
    return src, make_corrupt_middle(src, tmp_path / "lib" / "damaged.mp4")


def test_a_corrupt_middle_is_indexed_to_the_end_with_its_gaps_recorded(capsys, tmp_path, clip_dir, corrupt):
    src, bad = corrupt
    index = tmp_path / "idx"
    run = cli(capsys, "index", bad, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--json")
    assert run.code == 0, run.err
    summary = run.json()
    (warning,) = summary["warnings"]
    assert "damaged.mp4: corrupt data; lost" in warning["warning"]
    (row,) = _videos(index)
    gaps = json.loads(row["gaps"])
    assert gaps and all(0 < a < b < src.duration_s for a, b in gaps)
    assert row["warning"] == warning["warning"]
    assert row["duration_s"] == pytest.approx(src.duration_s, abs=0.2)


def test_stderr_carries_only_salovas_lines_decoder_noise_goes_to_the_log(tmp_path, clip_dir, corrupt):
    _, bad = corrupt
    args = [sys.executable, "-m", "salova_cli", "index", str(bad), "--index", str(tmp_path / "idx"),
            "--encoder", str(clip_dir), "--device", "cpu", "--quiet"]
    quiet = subprocess.run(args, env=cli_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("salova: ") for line in lines), quiet.stderr
    assert not any("@ 0x" in line for line in lines)
    # -v: the skipped packets are in salova's log
    loud = subprocess.run([*args[:3], "-v", *args[3:], "--index", str(tmp_path / "idx2")], env=cli_env(), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert all(line.startswith("salova: ") for line in loud.stderr.splitlines() if line.strip()), loud.stderr
    assert "salova: INFO: damaged.mp4: corrupt packet" in loud.stderr


def test_changed_settings_reindex_and_are_counted(capsys, tmp_path, clip_dir):
    video = make_video(tmp_path / "lib" / "a.mp4", SOURCE, fps=15, size=(96, 64))
    common = ["--index", tmp_path / "idx", "--encoder", clip_dir, "--device", "cpu", "--json"]
    first = cli(capsys, "index", video.path, *common).json()
    assert first["indexed"] == 1
    (row,) = _videos(tmp_path / "idx")
    assert json.loads(row["settings"])["fps"] == 1.0 and json.loads(row["settings"])["max_segment_s"] == 60.0
    again = cli(capsys, "index", video.path, *common).json()
    assert (again["unchanged"], again["reindexed"]) == (1, 0)
    faster = cli(capsys, "index", video.path, *common, "--fps", "2").json()
    assert (faster["reindexed"], faster["unchanged"], faster["updated"]) == (1, 0, 0)
    (row,) = _videos(tmp_path / "idx")
    assert json.loads(row["settings"])["fps"] == 2.0
    shorter = cli(capsys, "index", video.path, *common, "--fps", "2", "--max-segment", "1.5").json()
    assert shorter["reindexed"] == 1 and shorter["segments"] > first["segments"]
    plain = cli(capsys, "index", video.path, *common[:-1], "--fps", "2", "--max-segment", "1.5")
    assert plain.code == 0 and "0 re-indexed" not in plain.out and "1 unchanged" in plain.out


def test_a_latent_dtype_other_than_the_index_is_one_clear_error(capsys, tmp_path, clip_dir):
    video = make_video(tmp_path / "lib" / "a.mp4", SOURCE[:1], fps=15, size=(96, 64))
    common = ["--index", tmp_path / "idx", "--encoder", clip_dir, "--device", "cpu"]
    assert cli(capsys, "index", video.path, *common, "--quiet").code == 0
    run = cli(capsys, "index", video.path, *common, "--latent-dtype", "int8")
    assert run.code == 2
    assert run.err.count("\n") == 1 and run.err.startswith("salova: error: --latent-dtype int8: the index at ")
    assert "stores fp16 latents" in run.err
    assert cli(capsys, "index", video.path, *common, "--latent-dtype", "fp16", "--quiet").code == 0
