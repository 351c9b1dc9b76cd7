"""A re-run over unchanged, indexed files with the same encoder name loads no model and imports no torch;
a new file, or another encoder name, does load one."""

from __future__ import annotations

import subprocess
import sys

import pytest

import salova.runtime
from salova.pipeline.run import IndexOptions, run_index
from salova.testing.videos import make_video


@pytest.fixture()
def indexed(tmp_path, clip_dir):
    videos = tmp_path / "v"
    for i in range(3):
        make_video(videos / f"{i}.mp4", [(1.0, (40 * i, 200, 30)), (1.0, "noise")], fps=10, size=(64, 48))
    options = IndexOptions(index_dir=tmp_path / "idx", encoder=str(clip_dir), device="cpu", progress=False)
    assert run_index([videos], options).indexed == 3
    return videos, options


def _no_models(*args, **kwargs):
    raise AssertionError("a model was loaded")


def test_unchanged_files_load_no_model(indexed, monkeypatch):
    videos, options = indexed
    monkeypatch.setattr(salova.runtime, "load_models", _no_models)
    summary = run_index([videos], options)
    assert (summary.unchanged, summary.indexed) == (3, 0)
    assert summary.segments == 6


def test_a_new_file_or_another_encoder_loads_the_models(indexed, monkeypatch, tmp_path):
    videos, options = indexed
    monkeypatch.setattr(salova.runtime, "load_models", _no_models)
    make_video(videos / "new.mp4", [(1.0, "bars")], fps=10, size=(64, 48))
    with pytest.raises(AssertionError, match="a model was loaded"):
        run_index([videos], options)
    (videos / "new.mp4").unlink()
    options.encoder = str(tmp_path / "another-encoder")
    with pytest.raises(AssertionError, match="a model was loaded"):
        run_index([videos], options)


def test_unchanged_rerun_does_not_import_torch(indexed):
    videos, options = indexed
    code = (
        "import sys; from pathlib import Path; from salova.pipeline.run import IndexOptions, run_index; "
        f"s = run_index([{str(videos)!r}], IndexOptions(index_dir=Path({str(options.index_dir)!r}), "
        f"encoder={options.encoder!r}, progress=False)); "
        "assert s.unchanged == 3, s; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
