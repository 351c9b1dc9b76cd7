"""salova.video: one decode pass -> scene cuts (same as the scenedetect CLI) + 1-FPS frames."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from salova.errors import VideoOpenError
from salova.testing.videos import (
    make_audio_only,
    make_corrupt_middle,
    make_random_bytes,
    make_text_file,
    make_truncated,
    make_video,
    make_zero_byte,
)
from salova.video import (
    AdaptiveDetectorConfig,
    SampledFrame,
    SceneCut,
    Segment,
    SegmentCutter,
    VideoScanner,
    segment_frames,
    split_segments,
)

BACKENDS = ["sparse", "opencv", "pyav", "decord"]

RED, GREEN, BLUE, GREY = (220, 30, 30), (30, 200, 40), (20, 40, 210), (128, 128, 128)


def scan(path, **kwargs) -> tuple[VideoScanner, list[SceneCut | SampledFrame]]:
    scanner = VideoScanner(path, **kwargs)
    return scanner, list(scanner)


def textured(seed: int, size: tuple[int, int], dx: int = 2, tint=(1.0, 1.0, 1.0), cell: int = 0):
    """A panning noise texture with a drifting block: motion without cuts.

    ``cell=0``: hard 8 px blocks (busy: frame scores near a cut's); else smooth ``cell`` px blobs.
    """
    w, h = size
    rng = np.random.default_rng(seed)
    step = cell or 8
    tile = rng.integers(0, 256, (h // step + 2, w // step + 64 // step + 2, 3), dtype=np.uint8)
    shape = (tile.shape[1] * step, tile.shape[0] * step)
    big = cv2.resize(tile, shape, interpolation=cv2.INTER_CUBIC if cell else cv2.INTER_NEAREST)
    big = (big.astype(np.float32) * np.asarray(tint, np.float32)).clip(0, 255).astype(np.uint8)

    def render(i: int, t: float) -> np.ndarray:
        x = (i * dx) % (big.shape[1] - w)
        frame = big[:h, x : x + w].copy()
        bx = (i * 5) % (w - w // 5)
        frame[h // 3 : h // 2, bx : bx + w // 5] = (240, 200, 40)
        return frame

    return render


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("videos")
    out = {}
    out["flat"] = make_video(
        d / "flat.mp4", [(2.0, RED), (2.0, GREEN), (1.5, BLUE), (2.5, GREY)], fps=30, size=(160, 120)
    )
    out["looks"] = make_video(
        d / "looks.mp4",
        [(1.5, "noise"), (2.0, "bars"), (1.0, RED), (2.0, "checker"), (1.5, "noise")],
        fps=24,
        size=(160, 120),
    )
    size = (480, 270)  # wider than 256 px: the detector downscales, as the CLI does
    out["motion"] = make_video(
        d / "motion.mp4",
        [
            (1.6, textured(1, size)),
            (0.4, textured(2, size, tint=(1.2, 0.8, 0.8))),  # shorter than min_scene_len (0.6 s)
            (1.2, textured(3, size, dx=5)),
            (0.7, textured(4, size, tint=(0.7, 0.9, 1.2))),
            (0.5, textured(5, size, dx=-3)),
            (1.4, textured(6, size, tint=(0.9, 1.1, 0.6))),
        ],
        fps=30,
        size=size,
    )
    out["smooth"] = make_video(
        d / "smooth.mp4",
        [
            (1.5, textured(7, size, dx=1, cell=32)),
            (0.4, textured(8, size, dx=1, cell=32, tint=(1.3, 0.7, 0.7))),
            (1.0, textured(9, size, dx=-1, cell=32)),
            (0.8, textured(10, size, dx=1, cell=32, tint=(0.6, 0.8, 1.3))),
        ],
        fps=24,
        size=size,
    )
    out["mpeg4"] = make_video(d / "mpeg4.avi", [(1.5, "noise"), (1.5, "checker"), (1.5, BLUE)], fps=25, codec="mpeg4")
    return out


# --- scene cuts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_cuts_at_exact_frames(videos, backend):
    for name in ("flat", "looks", "mpeg4"):
        video = videos[name]
        scanner, events = scan(video, backend=backend)
        assert scanner.result.cuts == video.cut_frames, name
        assert [e.frame_index for e in events if isinstance(e, SceneCut)] == video.cut_frames
        assert scanner.result.frames_decoded == video.num_frames
        assert scanner.result.end_frame == video.num_frames
        assert scanner.result.duration_s == pytest.approx(video.duration_s, abs=1e-3)
        assert scanner.result.cut_times_s == pytest.approx(video.cut_times, abs=1e-3)
        assert scanner.info.backend == backend
        assert scanner.result.warnings == []


def cli_cuts(path: Path, out_dir: Path) -> list[int]:
    """Cut frames from ``scenedetect -i FILE detect-adaptive list-scenes`` (0-based)."""
    cmd = [sys.executable, "-m", "scenedetect", "-q", "-i", str(path), "-o", str(out_dir)]
    cmd += ["detect-adaptive", "list-scenes", "-f", "scenes.csv"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    rows = list(csv.reader((out_dir / "scenes.csv").read_text().splitlines()))
    header = rows[1]
    starts = [int(r[header.index("Start Frame")]) - 1 for r in rows[2:]]  # 1-based in the CSV
    return starts[1:]


@pytest.mark.parametrize("name", ["motion", "smooth", "looks"])
def test_cuts_equal_scenedetect_cli(videos, name, tmp_path):
    video = videos[name]
    expected = cli_cuts(video.path, tmp_path)
    scanner, _ = scan(video)  # backend "auto": sparse for 8-bit 4:2:0
    assert scanner.info.backend == "sparse"
    assert scanner.result.cuts == expected
    assert scan(video, backend="opencv")[0].result.cuts == expected
    assert expected or name != "motion"  # the busy video still has cuts the CLI finds


def test_ten_bit_video_cuts_equal_cli(tmp_path):
    # OpenCV ("auto") decodes 10-bit video to the CLI's pixels; PyAV and decord convert it slightly
    # differently, which here adds a cut at frame 102 that the CLI does not report.
    size = (480, 270)
    segments = [
        (1.665, textured(706, size, dx=-4, tint=(0.965, 0.934, 1.124), cell=32)),
        (0.838, textured(88, size, dx=-1, tint=(0.943, 1.099, 0.9), cell=16)),
        (0.894, textured(846, size, dx=4, tint=(0.846, 0.788, 0.868), cell=8)),
        (0.95, textured(339, size, dx=1, tint=(1.262, 0.776, 0.949), cell=16)),
    ]
    video = make_video(tmp_path / "ten.mp4", segments, size=size, pix_fmt="yuv420p10le")
    expected = cli_cuts(video.path, tmp_path)
    scanner, _ = scan(video)
    assert scanner.info.backend == "opencv"
    assert scanner.result.cuts == expected


def test_min_scene_len(videos):
    video = videos["smooth"]  # 24 fps, scenes of 36, 10, 24 and 19 frames
    scanner, _ = scan(video)
    # The default 0.6 s is 14 frames at 24 fps: the cut 10 frames after the first one is dropped.
    assert scanner.result.cuts == [36, 70]
    scanner, _ = scan(video, detector=AdaptiveDetectorConfig(min_scene_len=10))  # frames
    assert scanner.result.cuts == video.cut_frames
    scanner, _ = scan(video, detector=AdaptiveDetectorConfig(min_scene_len=30))
    assert scanner.result.cuts == [36, 70]
    scanner, _ = scan(video, detector=AdaptiveDetectorConfig(min_scene_len="1.5s"))
    assert scanner.result.cuts == [36]
    with pytest.raises(ValueError):
        AdaptiveDetectorConfig(window_width=0)


# --- sampling and event order -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_frame_per_second(videos, backend):
    video = videos["flat"]  # 30 fps, 8 s: red 0-2 s, green 2-4, blue 4-5.5, grey 5.5-8
    scanner, events = scan(video, backend=backend)
    frames = [e for e in events if isinstance(e, SampledFrame)]
    assert [f.frame_index for f in frames] == [30 * k for k in range(8)]
    assert [f.time_s for f in frames] == pytest.approx(list(range(8)), abs=1e-3)
    for f in frames:
        assert f.rgb.shape == (120, 160, 3) and f.rgb.dtype == np.uint8
    colours = [RED, RED, GREEN, GREEN, BLUE, BLUE, GREY, GREY]
    for f, colour in zip(frames, colours, strict=True):
        assert np.abs(f.rgb.reshape(-1, 3).mean(0) - colour).max() < 6, f.time_s  # RGB order


def test_sample_fps_and_ntsc_rate(tmp_path):
    video = make_video(tmp_path / "ntsc.mp4", [(3.0, "bars")], fps=30000 / 1001)
    _, events = scan(video, sample_fps=2.0)
    frames = [e for e in events if isinstance(e, SampledFrame)]
    ticks = [k / 2 for k in range(6)]
    # First frame at or after each tick: frame ceil(tick * fps).
    assert [f.frame_index for f in frames] == [math.ceil(t * 30000 / 1001 - 1e-9) for t in ticks]
    for f, t in zip(frames, ticks, strict=True):
        assert t <= f.time_s + 1e-6 < t + 1001 / 30000


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_sampled_by_time(tmp_path, backend):
    # 20 ms frames for 1 s, then a 2.5 s freeze, then 100 ms frames.
    times = [i * 0.02 for i in range(50)] + [3.5 + i * 0.1 for i in range(25)]
    video = make_video(tmp_path / "vfr.mkv", [(50 / 30, "noise"), (25 / 30, "checker")], frame_times=times)
    _, events = scan(video, backend=backend)
    got = [round(e.time_s, 3) for e in events if isinstance(e, SampledFrame)]
    assert got == [0.0, 3.5, 4.0, 5.0]  # one frame for ticks 1-3 s; ends at 5.9 s


def test_events_ordered_cut_before_frame(videos):
    _, events = scan(videos["flat"], sample_fps=30.0)  # every frame sampled
    keys = [(e.frame_index, 0 if isinstance(e, SceneCut) else 1) for e in events]
    assert keys == sorted(keys)
    assert sum(isinstance(e, SampledFrame) for e in events) == videos["flat"].num_frames
    # The cut at frame 60 is announced before frame 60 itself.
    i = keys.index((60, 0))
    assert keys[i + 1] == (60, 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotated_video_frames_in_display_orientation(tmp_path, backend):
    def marked(i: int, t: float) -> np.ndarray:
        img = np.zeros((120, 160, 3), np.uint8)
        img[:20, :40] = (255, 0, 0)  # red mark top-left of the coded picture
        return img

    video = make_video(tmp_path / "rot.mp4", [(1.0, marked)], rotation=90)
    scanner, events = scan(video, backend=backend)
    assert (scanner.info.width, scanner.info.height, scanner.info.rotation) == (120, 160, 90)
    frame = next(e for e in events if isinstance(e, SampledFrame))
    assert frame.rgb.shape == (160, 120, 3)
    ys, xs = np.nonzero(frame.rgb[..., 0] > 200)
    # 90 degrees counter-clockwise: the top-left mark ends up bottom-left.
    assert ys.mean() > 120 and xs.mean() < 20


def test_progress_second_pass_and_early_stop(videos):
    video = videos["flat"]
    counts: list[int] = []
    scanner = VideoScanner(video, on_progress=counts.append)
    first = list(scanner)
    assert sum(counts) == video.num_frames
    second = list(scanner)  # iterating again decodes the file again
    assert [(type(e), e.frame_index) for e in first] == [(type(e), e.frame_index) for e in second]

    before = threading.active_count()
    with VideoScanner(video) as scanner:
        for _ in scanner:
            break  # abandoning the pass stops the decode thread
    assert threading.active_count() == before


def test_memory_does_not_grow_with_length(tmp_path):
    def peak(seconds: float) -> int:
        video = make_video(tmp_path / f"m{seconds}.mp4", [(seconds, "noise")], size=(320, 240))
        tracemalloc.start()
        for _ in VideoScanner(video):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    short, long = peak(1.0), peak(8.0)
    assert long < short * 1.5 + 1_000_000


# --- split_segments ---------------------------------------------------------------------------------


def test_split_segments_scenes_and_times():
    segs = split_segments([30, 90], num_frames=120, fps=30.0, max_segment_s=10.0)
    assert [(s.start_frame, s.end_frame) for s in segs] == [(0, 30), (30, 90), (90, 120)]
    assert [s.index for s in segs] == [0, 1, 2]
    assert segs[1] == Segment(1, 30, 90, 1.0, 3.0)
    assert segs[1].duration_s == 2.0


def test_split_segments_long_scene_into_equal_parts():
    # A 100-frame scene at 10 fps with max 3 s (30 frames): 4 parts of 25 frames.
    segs = split_segments([10], num_frames=110, fps=10.0, max_segment_s=3.0)
    assert [(s.start_frame, s.end_frame) for s in segs] == [(0, 10), (10, 35), (35, 60), (60, 85), (85, 110)]
    # Uneven: 101 frames into 4 parts differing by at most one frame, none over the limit.
    lengths = [s.end_frame - s.start_frame for s in split_segments([], 101, 10.0, 3.0)]
    assert len(lengths) == 4 and sum(lengths) == 101 and max(lengths) - min(lengths) <= 1
    assert max(lengths) <= 30
    # Exactly the limit is not split.
    assert len(split_segments([], 30, 10.0, 3.0)) == 1


def test_split_segments_without_cuts_and_edges():
    segs = split_segments([], num_frames=3 * 60 * 30, fps=30.0, max_segment_s=60.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 60.0), (60.0, 120.0), (120.0, 180.0)]
    assert split_segments([], 0, 30.0, 10.0) == []
    assert len(split_segments([], 1000, 30.0, math.inf)) == 1
    # Out-of-range and duplicate cuts are ignored; the segments tile the video.
    segs = split_segments([0, 50, 50, 200], num_frames=100, fps=25.0, max_segment_s=100.0)
    assert [(s.start_frame, s.end_frame) for s in segs] == [(0, 50), (50, 100)]
    with pytest.raises(ValueError):
        split_segments([], 100, 30.0, 0.01)  # shorter than a frame


def test_scanned_video_segments_tile_the_video(videos):
    scanner, _ = scan(videos["flat"])
    res = scanner.result
    segs = split_segments(res.cuts, res.end_frame, res.info.fps, max_segment_s=1.0)
    assert segs[0].start_frame == 0 and segs[-1].end_frame == videos["flat"].num_frames
    assert all(s.end_frame - s.start_frame <= 30 for s in segs)
    assert {60, 120, 165} <= {s.start_frame for s in segs}


def test_a_part_without_a_sampled_frame_joins_the_next_segment():
    # 10 fps, samples at frames 0, 10, 20, ...; a cut at 12 and 15 leaves [12, 15) with no sample.
    frames = np.arange(0, 40, 10)
    pairs = segment_frames([12, 15], 40, 10.0, 60.0, frames)
    assert [(s.start_frame, s.end_frame) for s, _ in pairs] == [(0, 12), (12, 40)]
    assert [rows.tolist() for _, rows in pairs] == [[0, 1], [2, 3]]
    assert [s.index for s, _ in pairs] == [0, 1]


def test_trailing_frames_without_a_sample_extend_the_last_segment():
    frames = np.arange(0, 40, 10)  # last sample at 30
    pairs = segment_frames([32], 40, 10.0, 60.0, frames)
    assert [(s.start_frame, s.end_frame, s.end_s) for s, _ in pairs] == [(0, 40, 4.0)]


def test_streaming_cutter_equals_the_whole_video_rule():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 400))
        cuts = sorted(set(rng.integers(1, n, size=int(rng.integers(0, 8))).tolist()))
        frames = np.arange(0, n, int(rng.integers(1, 30)))
        whole = segment_frames(cuts, n, 10.0, 4.0, frames)
        cutter, streamed = SegmentCutter(10.0, 4.0), []
        for end in [*cuts, None]:
            scene = frames[(frames >= cutter.scene_start) & (frames < (end if end is not None else n))]
            if end is None:
                out, extend_to = cutter.finish(n, scene)
            else:
                out, extend_to = cutter.close_scene(end, scene), None
            streamed += [(s, (scene[rows] if len(rows) else rows)) for s, rows in out]
            if extend_to is not None:
                s, rows = streamed[-1]
                streamed[-1] = (Segment(s.index, s.start_frame, extend_to, s.start_s, extend_to / 10.0), rows)
        assert [s for s, _ in streamed] == [s for s, _ in whole]
        assert [f.tolist() for _, f in streamed] == [frames[rows].tolist() for _, rows in whole]
        covered = sorted(int(f) for _, rows in whole for f in frames[rows])
        assert covered == frames.tolist()  # every sampled frame is in exactly one segment


# --- bad inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "name", "reason"),
    [
        (make_zero_byte, "empty.mp4", "empty file"),
        (make_random_bytes, "junk.mp4", "not a video"),
        (make_text_file, "notes.txt", "not a video"),
        (make_audio_only, "tone.m4a", "no video stream"),
    ],
)
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_bad_inputs_raise_one_line_error(tmp_path, maker, name, reason, backend):
    path = maker(tmp_path / name)
    with pytest.raises(VideoOpenError) as err:
        VideoScanner(path, backend=backend)
    message = str(err.value)
    assert message.startswith(f"{name}: ") and reason in message
    assert "\n" not in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoOpenError, match="missing.mp4: file not found"):
        VideoScanner(tmp_path / "missing.mp4")
    with pytest.raises(VideoOpenError, match="is a directory"):
        VideoScanner(tmp_path)
    with pytest.raises(ValueError):
        VideoScanner(tmp_path / "x.mp4", backend="gstreamer")


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_truncated_file_keeps_decoded_prefix(tmp_path, backend):
    full = make_video(tmp_path / "full.mp4", [(2.0, RED), (2.0, "noise"), (2.0, GREEN)], faststart=True)
    cut = make_truncated(full, tmp_path / "cut.mp4", keep=0.6)
    scanner, events = scan(cut, backend=backend)
    result = scanner.result
    assert 0 < result.frames_decoded < full.num_frames
    assert result.duration_s < full.duration_s
    assert result.warnings and result.warnings[0].startswith("cut.mp4: ")
    assert [e.time_s for e in events if isinstance(e, SampledFrame)][0] == 0.0


def test_truncated_without_index_is_an_error(tmp_path):
    full = make_video(tmp_path / "full.mp4", [(2.0, RED), (2.0, "noise")])  # index (moov) at the end
    cut = make_truncated(full, tmp_path / "cut.mp4", keep=0.5)
    with pytest.raises(VideoOpenError, match="cut.mp4: "):
        VideoScanner(cut)


def test_corrupt_middle_does_not_crash(tmp_path):
    full = make_video(tmp_path / "full.mkv", [(2.0, "noise"), (2.0, "checker"), (2.0, "bars")])
    bad = make_corrupt_middle(full, tmp_path / "bad.mkv")
    scanner, events = scan(bad)
    assert scanner.result.frames_decoded > 0
    assert any(isinstance(e, SampledFrame) for e in events)
