"""One decode pass per video (README): the scene detector, the 1-FPS sampler and the connector are all fed by a
single opening of the file, in which every frame is decoded once; an unchanged file is not decoded at all."""

from __future__ import annotations

import pytest

from salova.testing.videos import make_video
from tests.cli_helpers import cli
from tests.decode_counter import DecodeCounter


@pytest.mark.parametrize("model_option", ["--encoder", "--model"])
def test_each_video_is_decoded_once(capsys, monkeypatch, tmp_path, clip_dir, salova_retrieval_dir, model_option):
    model = clip_dir if model_option == "--encoder" else salova_retrieval_dir
    videos = [
        make_video(tmp_path / "v" / "a.mp4", [(2.0, (230, 30, 30)), (2.0, "noise"), (1.0, "checker")], fps=15,
                   size=(96, 64)),
        make_video(tmp_path / "v" / "b.mp4", [(3.0, "bars"), (2.0, (30, 30, 230))], fps=24, size=(96, 64)),
    ]
    counter = DecodeCounter(monkeypatch)
    index = tmp_path / "idx"
    args = ["index", tmp_path / "v", "--index", index, model_option, model, "--device", "cpu", "--json"]
    run = cli(capsys, *args)
    assert run.code == 0, run.err
    assert run.json()["segments"] == 5
    paths = [str(v.path.resolve()) for v in videos]
    assert counter.opens == {p: 1 for p in paths}
    assert counter.frames == {p: v.num_frames for p, v in zip(paths, videos, strict=True)}

    counter.reset()
    again = cli(capsys, *args)
    assert again.code == 0 and again.json()["unchanged"] == 2
    assert counter.opens == {} and counter.frames == {}
