"""Variable frame rate: segment bounds at scene cuts and at the end are the frames' presentation times, so a
moment's clock time is right however the frame rate varies."""

from __future__ import annotations

import pytest

from salova.testing.videos import make_video
from tests.cli_helpers import cli, segments_table


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_segment_times_are_presentation_times_in_a_vfr_file(capsys, tmp_path, clip_dir, ext):
    # 40 ms frames for 2 s, a freeze until 5 s, then 200 ms frames: the cut is at 5.0 s, the end at 9.0 s + 1 frame
    times = [i * 0.04 for i in range(50)] + [5.0 + i * 0.2 for i in range(21)]
    video = make_video(tmp_path / f"vfr.{ext}", [(50 / 25, "noise"), (21 / 25, (30, 200, 40))], fps=25,
                       size=(96, 64), frame_times=times)
    index = tmp_path / "idx"
    run = cli(capsys, "index", video.path, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--json")
    assert run.code == 0, run.err
    rows = segments_table(index)
    starts = [r[2] for r in rows]
    assert starts[0] == 0.0
    assert 5.0 in [pytest.approx(s, abs=1e-3) for s in starts]  # the cut frame's own time
    assert all(a < b for a, b in zip(starts, starts[1:], strict=False))
    nominal = rows[-1][3] - times[-1]  # one nominal frame after the last frame's time
    assert 0 < nominal <= 0.2
    assert all(r[3] == pytest.approx(n[2]) for r, n in zip(rows, rows[1:], strict=False))  # no holes, no overlap
