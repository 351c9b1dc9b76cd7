"""`salova clip` and `ask --export`: moments cut out as files, stream copy where keyframes allow."""

from __future__ import annotations

import av
import numpy as np
import pytest

from salova.errors import UsageError
from salova.testing.videos import make_video
from salova.video.clip import export_clip, parse_time
from salova.video.seek import frames_at
from tests.cli_helpers import cli


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Four 2-s scenes at 10 fps with a tone; x264 puts keyframes at 0, 2 and 6 s (not at 4: noise -> green)."""
    segs = [(2.0, (200, 30, 30)), (2.0, "noise"), (2.0, (30, 200, 30)), (2.0, "checker")]
    return make_video(tmp_path_factory.mktemp("clip") / "src.mp4", segs, fps=10, size=(96, 64), with_audio=True)


def probe(path):
    """(video frame times, duration s, has audio) of a file."""
    with av.open(str(path)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(c.streams.video[0])]
        return times, c.duration / av.time_base, bool(c.streams.audio)


@pytest.mark.parametrize(("start", "end", "mode"), [(6.0, 8.0, "copy"), (2.0, 4.0, "reencode"),
                                                     (2.5, 5.0, "reencode")])
def test_clip_duration_and_first_frame_match_the_moment(tmp_path, source, start, end, mode):
    clip = export_clip(source, start, end, tmp_path / "c.mp4")
    assert clip.mode == mode
    times, duration, audio = probe(clip.path)
    assert len(times) == round((end - start) * 10) and times[0] == 0.0
    assert duration == pytest.approx(end - start, abs=0.1) and audio
    first, = frames_at(clip.path, [0.0])
    expected, = frames_at(source, [start])
    diff = np.abs(first.astype(int) - expected).mean()
    assert diff < (0.5 if mode == "copy" else 4.0)  # copy: the same packets; re-encode: near-lossless crf 18


def test_reencode_can_be_forced(tmp_path, source):
    assert export_clip(source, 6.0, 8.0, tmp_path / "c.mp4", mode="reencode").mode == "reencode"


def test_clip_end_past_the_video_stops_at_its_end(tmp_path, source):
    clip = export_clip(source, 6.0, 99.0, tmp_path / "tail.mp4")
    assert clip.mode == "copy" and clip.end_s == pytest.approx(8.0, abs=0.05)
    assert len(probe(clip.path)[0]) == 20


def test_parse_time_reads_seconds_and_clock_times():
    assert parse_time("12.5", "start") == 12.5
    assert parse_time("01:02", "start") == 62
    assert parse_time("1:00:01.5", "end") == 3601.5
    with pytest.raises(UsageError) as err:
        parse_time("ten", "end")
    assert err.value.problems[0][0] == "end"


def test_clip_command_and_its_usage_errors(capsys, tmp_path, source):
    out = tmp_path / "moment.mp4"
    run = cli(capsys, "clip", source.path, "00:06", "8", "-o", out)
    assert run.code == 0, run.err
    assert run.out.strip() == f"wrote {out} (6-8 s, stream copy)" and out.is_file()
    for args, message in [
        (["5", "4"], "salova: error: --end must be after the start (5 s), got 4 s"),
        (["9", "12"], "salova: error: --start 9 s is past the end of the video (8.000 s)"),
        (["x", "4"], "salova: error: --start 'x': expected seconds or [HH:]MM:SS"),
    ]:
        bad = cli(capsys, "clip", source.path, *args, "-o", out)
        assert bad.code == 2 and bad.err.strip() == message, bad.err
    missing = cli(capsys, "clip", tmp_path / "nope.mp4", "0", "1", "-o", out)
    assert missing.code == 2 and missing.err.strip() == f"salova: error: {tmp_path / 'nope.mp4'}: no such video file"


def test_ask_export_writes_each_moment(capsys, tmp_path, indexed):
    video, index = indexed
    run = cli(capsys, "ask", video.path, "red", "--index", index, "--top-k", "2", "--export", tmp_path / "clips",
              "--json")
    assert run.code == 0, run.err
    out = run.json()
    assert len(out["clips"]) == 2
    for c, m in zip(out["clips"], sorted(out["moments"], key=lambda m: m["rank"]), strict=True):
        times, duration, _ = probe(c["path"])
        assert c["rank"] == m["rank"] and duration == pytest.approx(m["end_s"] - m["start_s"], abs=0.1)
        assert c["mode"] == "copy"  # scenes start and end on x264's scene-cut keyframes
