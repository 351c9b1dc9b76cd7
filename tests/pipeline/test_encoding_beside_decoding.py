"""Encoding on a second thread, and reusing a static frame's features, change nothing they should not:
the same cuts, segments and vectors with and without the overlap; no reuse on a video that never stands still."""

from __future__ import annotations

import numpy as np
import pytest

from salova.pipeline.encode import EncodeSettings, Indexer
from salova.runtime import load_models
from salova.testing.videos import make_video

SIZE = (96, 64)


def _moving(seed: int):
    """A tinted texture that shifts 1 px every frame: no two 1-FPS frames are alike; scenes differ in colour."""
    rng = np.random.default_rng(seed)
    tint = np.array([(1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.3, 1.0), (1.0, 1.0, 0.3)][seed % 4])
    grey = rng.integers(0, 256, (SIZE[1] // 8, SIZE[0] // 8, 1)).astype(np.float32)
    tex = np.repeat(np.repeat(grey * tint, 8, 0), 8, 1).astype(np.uint8)

    def look(i, t):
        return np.roll(tex, i, axis=1)

    return look


def _scan(models, path, **settings):
    indexer = Indexer(models, store=None, settings=EncodeSettings(max_segment_s=2.0, batch_size=2, **settings))
    _, result, segments = indexer.scan(path)
    return result, segments, indexer.frames_reused


@pytest.fixture(scope="module")
def models(clip_dir):
    return load_models(encoder=clip_dir, device="cpu")


@pytest.fixture(scope="module")
def moving_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "moving.mp4"
    return make_video(path, [(3.0, _moving(0)), (2.5, _moving(1)), (3.0, _moving(2))], fps=10, size=SIZE)


@pytest.mark.parametrize("dedup", [0.0, 1.0])
def test_overlap_gives_the_same_cuts_segments_and_vectors(models, moving_video, dedup):
    res_a, segs_a, _ = _scan(models, moving_video.path, overlap=False, dedup_threshold=dedup)
    res_b, segs_b, _ = _scan(models, moving_video.path, overlap=True, dedup_threshold=dedup)
    assert res_a.cuts == res_b.cuts and len(res_a.cuts) == 2
    assert [(s.start_frame, s.end_frame) for s in segs_a] == [(s.start_frame, s.end_frame) for s in segs_b]
    assert len(segs_a) > len(res_a.cuts) + 1  # long scenes were split too
    for a, b in zip(segs_a, segs_b, strict=True):
        np.testing.assert_array_equal(a.frame_times, b.frame_times)
        np.testing.assert_allclose(a.frame_joint, b.frame_joint, atol=1e-6)
        np.testing.assert_allclose(a.joint, b.joint, atol=1e-6)


def test_reuse_changes_nothing_on_a_video_that_never_stands_still(models, moving_video):
    _, plain, _ = _scan(models, moving_video.path, dedup_threshold=0.0)
    _, dedup, reused = _scan(models, moving_video.path, dedup_threshold=1.0)
    assert reused == 0
    for a, b in zip(plain, dedup, strict=True):
        np.testing.assert_allclose(a.frame_joint, b.frame_joint, atol=1e-6)


def test_static_scenes_reuse_features_and_keep_their_frames(models, tmp_path):
    video = make_video(tmp_path / "still.mp4", [(4.0, (200, 40, 40)), (3.0, _moving(3)), (4.0, "noise")],
                       fps=10, size=SIZE)
    _, plain, _ = _scan(models, video.path, dedup_threshold=0.0)
    _, dedup, reused = _scan(models, video.path, dedup_threshold=1.0)
    assert reused >= 4  # 4 s red + 4 s still noise at 1 FPS: all but each scene's first frame
    assert [len(s.frame_times) for s in plain] == [len(s.frame_times) for s in dedup]  # every frame still stored
    for a, b in zip(plain, dedup, strict=True):
        np.testing.assert_allclose(a.joint, b.joint, atol=2e-3)


def test_batch_size_follows_the_device_unless_asked(models):
    import dataclasses

    import torch

    assert Indexer(models, store=None, settings=EncodeSettings()).batch_size == 16
    on_gpu = dataclasses.replace(models, device=torch.device("cuda"))  # batching is decided by the device alone
    assert Indexer(on_gpu, store=None, settings=EncodeSettings()).batch_size == 64
    assert Indexer(on_gpu, store=None, settings=EncodeSettings(batch_size=5)).batch_size == 5
