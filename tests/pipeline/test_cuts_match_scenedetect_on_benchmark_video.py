"""The speed benchmark's cut check (benchmarks/bench_index.py `check_cuts`), run on a short video of the
benchmark's own kind (`scene_video`: textured layers panning, scenes of varying length) against the real
`scenedetect` CLI in a subprocess: `salova index` segments are scenedetect's scenes, long ones split."""

from __future__ import annotations

import pytest

from benchmarks import _common
from benchmarks.bench_index import check_cuts
from tests.cli_helpers import cli


@pytest.fixture()
def bench_video(monkeypatch, tmp_path):
    monkeypatch.setattr(_common, "WORK", tmp_path / "work")  # not the repository's benchmarks/_work cache
    # seed 4: scenes of 11.2, 3.5 and 5.3 s
    return _common.scene_video(20, (320, 180), 30, seed=4, log=lambda *_: None)


def test_index_segments_are_scenedetects_scenes_split_at_max_segment(capsys, tmp_path, clip_dir, bench_video):
    index = tmp_path / "idx"
    run = cli(capsys, "index", bench_video.path, "--index", index, "--encoder", clip_dir, "--device", "cpu",
              "--max-segment", "5", "--quiet")
    assert run.code == 0, run.err
    check = check_cuts(bench_video.path, index, tmp_path / "scenes", max_segment_s=5)
    assert check.equal, check.describe()
    assert len(check.cuts) >= 2  # the detector found the scene changes
    assert len(check.expected) > len(check.cuts) + 1  # and long scenes were split: both rules are exercised
    assert check.expected[-1][1] == bench_video.frames

    # the check can fail: the same index against another splitting length
    other = check_cuts(bench_video.path, index, tmp_path / "scenes2", max_segment_s=60)
    assert not other.equal and "DIFFERENT" in other.describe()
