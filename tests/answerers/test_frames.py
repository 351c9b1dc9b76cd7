"""Which stored frames each moment shows, and decoding them again at exactly those times."""

from __future__ import annotations

import numpy as np
import pytest

from salova.answerers import build_request, pick_frame_times
from salova.answerers.context import frame_quota, spread
from salova.errors import UsageError
from salova.retrieval.results import Moment
from salova.video.seek import frames_at
from tests.answerers.conftest import FPS, read_barcode


def test_frame_quota_splits_the_budget_best_ranks_first():
    assert frame_quota([3, 1, 2], 8) == {1: 3, 2: 3, 3: 2}
    assert frame_quota([1, 2, 3, 4, 5], 3) == {1: 1, 2: 1, 3: 1, 4: 0, 5: 0}
    with pytest.raises(UsageError) as err:
        frame_quota([1], 0)
    assert err.value.problems[0][0] == "max_frames"


def test_spread_keeps_the_best_frame_and_spreads_the_rest():
    times = np.arange(10, 20, dtype=float)
    assert spread(times, 14.2, 1) == [14.0]
    picked = spread(times, 14.2, 3)
    assert 14.0 in picked and picked == sorted(picked) and len(picked) == 3
    assert set(picked) <= set(times.tolist())
    assert spread(times, 12.0, 50) == times.tolist()
    assert spread(np.empty(0), 1.0, 3) == []


def test_pick_frame_times_are_stored_times_of_each_moment():
    segment_times = [np.array([0.0, 1.0]), np.array([2.0, 3.0, 4.0, 5.0]), np.array([6.0, 7.0])]
    moments = [Moment(2, 0, 0.0, 2.0, 1.0, 0.4), Moment(1, 1, 2.0, 6.0, 4.0, 0.9)]
    picked = pick_frame_times(moments, segment_times, max_frames=5)
    assert picked[1] == [2.0, 4.0, 5.0] and picked[2] == [0.0, 1.0]  # rank 1 gets the odd frame


def test_frames_at_returns_the_frame_at_each_requested_time(barcode_video):
    times = [0.0, 3.7, 0.5, 11.9, 6.0, 6.1]  # unsorted, one far seek, neighbours
    images = frames_at(barcode_video, times)
    assert [read_barcode(im) for im in images] == [round(t * FPS) for t in times]
    assert images[0].shape == (96, 160, 3) and images[0].dtype == np.uint8


def test_frames_at_shrinks_to_max_side(barcode_video):
    (image,) = frames_at(barcode_video, [1.0], max_side=80)
    assert image.shape == (48, 80, 3)


def test_build_request_without_frames_decodes_nothing(barcode_video, monkeypatch):
    import salova.answerers.context as context

    monkeypatch.setattr(context, "frames_at", lambda *a, **k: pytest.fail("decoded frames for a text model"))
    req = build_request(barcode_video.path, "q", [Moment(1, 0, 0.0, 2.0, 1.0, 0.5)], [np.array([0.0, 1.0])],
                        max_frames=4, with_frames=False)
    assert req.moments[0].frames == [] and req.moments[0].frame_times == [] and req.video == "barcode.mp4"
