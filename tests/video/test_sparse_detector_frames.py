"""The sparse backend: the scene detector's small frames converted from the pixels the downscale reads only,
equal to the bit to what scenedetect's reader gives (OpenCV: whole-frame BGR, then ``cv2.resize``)."""

from __future__ import annotations

import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

from salova.testing.videos import VideoWriter, make_video
from salova.video import SampledFrame, SceneCut, VideoScanner
from salova.video.backends import open_frames
from salova.video.sparse import SparsePlan, bilinear_taps


def _noise_video(path, size, *, frames=12, pix_fmt="yuv420p", rotation=0, colorspace=None, color_range=None):
    """Smooth colour noise that changes every frame (every pixel and chroma sample matters)."""
    import cv2

    rng = np.random.default_rng(len(str(path)))
    w, h = size
    with VideoWriter(path, 30, size, pix_fmt=pix_fmt, rotation=rotation) as out:
        if colorspace is not None:
            out.stream.codec_context.colorspace = colorspace
        if color_range is not None:
            out.stream.codec_context.color_range = color_range
        for _ in range(frames):
            coarse = rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8)
            out.write(cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC))
    return path


def _pairs(path):
    """(opencv small, sparse small, opencv rgb, sparse rgb) for every frame, both sources read in step."""
    cv, _ = open_frames(path, "opencv")
    sp, _ = open_frames(path, "sparse")
    assert sp.name == "sparse"
    try:
        for (t_cv, a), (t_sp, b) in zip(cv, sp, strict=True):
            assert t_cv == pytest.approx(t_sp, abs=1e-6)
            yield cv.small_bgr(a), sp.small_bgr(b), cv.sample_rgb(a), sp.sample_rgb(b)
    finally:
        cv.close()
        sp.close()


@pytest.mark.parametrize(
    ("size", "kwargs"),
    [
        ((1280, 720), {}),  # factor 5: the read pixels are the small frame (no resize at all)
        ((960, 540), {}),  # factor 3.75: two taps per axis, then cv2.resize
        ((512, 288), {}),  # factor 2: OpenCV's 2x special case
        ((854, 480), {}),  # factor 3.34, width not a multiple of 16
        ((322, 182), {}),  # factor 1.26, small odd chroma
        ((200, 150), {}),  # narrower than 256 px: no downscale
        ((640, 360), {"rotation": 90}),  # display rotation: OpenCV rotates before resizing
        ((640, 360), {"rotation": 270}),
        ((640, 360), {"pix_fmt": "yuvj420p"}),  # full range
        ((640, 360), {"colorspace": Colorspace.ITU709, "color_range": ColorRange.MPEG}),  # BT.709 matrix
    ],
    ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else "-".join(f"{k}={v[k]}" for k in v) or "plain",
)
def test_small_frames_and_samples_equal_opencvs_to_the_bit(tmp_path, size, kwargs):
    path = _noise_video(tmp_path / "v.mp4", size, **kwargs)
    n = 0  # both in display orientation: OpenCV's frames come rotated, the sparse plan reads rotated
    for small_cv, small_sp, rgb_cv, rgb_sp in _pairs(path):
        assert small_sp.shape == small_cv.shape and small_sp.dtype == np.uint8
        assert np.array_equal(small_sp, small_cv)
        assert np.array_equal(rgb_sp, rgb_cv)
        n += 1
    assert n == 12


def test_opencv_and_sparse_frames_are_not_trivially_equal(tmp_path):
    """The comparison above can fail: a one-tap-off plan gives other pixels on the same video."""
    path = _noise_video(tmp_path / "v.mp4", (1280, 720), frames=2)
    source, _ = open_frames(path, "sparse")
    frame = source._first[1]
    good = source.plan.small_bgr(frame)
    shifted = SparsePlan((1280, 720), 0, (256, 144), "yuv420p")
    shifted.rows = shifted.rows + 1  # what an off-by-one in the tap positions would read
    shifted._coded_y, shifted._coded_x = np.divmod(
        np.arange(1280 * 720).reshape(720, 1280)[np.ix_(shifted.rows, shifted.cols)], 1280)
    assert not np.array_equal(shifted.small_bgr(frame), good)
    source.close()


def test_verify_refuses_a_plan_that_reads_the_wrong_pixels():
    plan = SparsePlan((640, 360), 0, (256, 144), "yuv420p")
    import av

    like = av.VideoFrame(640, 360, "yuv420p")
    assert plan.verify(like)
    plan._coded_x = np.minimum(plan._coded_x + 2, 639)  # two pixels to the right: the check notices
    plan._lines = None
    assert not plan.verify(like)


def test_bilinear_taps_by_hand():
    # 1280 -> 256: position (d + 0.5) * 5 - 0.5 = 5d + 2, a whole number: one tap each
    assert np.array_equal(bilinear_taps(1280, 256), np.arange(2, 1280, 5))
    # 10 -> 4: positions 0.75, 3.25, 5.75, 8.25 read 0-1, 3-4, 5-6, 8-9
    assert bilinear_taps(10, 4).tolist() == [0, 1, 3, 4, 5, 6, 8, 9]
    # 10 -> 5: positions 1.5, 3.5, ... clamped at the edge
    assert bilinear_taps(3, 2).tolist() == [0, 1, 2]


@pytest.mark.parametrize(("pix_fmt", "backend"), [("yuv420p", "sparse"), ("yuv420p10le", "opencv"),
                                                  ("yuv444p", "opencv")])
def test_auto_takes_sparse_for_8_bit_420_and_opencv_otherwise(tmp_path, pix_fmt, backend):
    path = _noise_video(tmp_path / "v.mp4", (320, 180), frames=3, pix_fmt=pix_fmt)
    scanner = VideoScanner(path)
    assert scanner.info.backend == backend
    scanner.close()
    if backend == "opencv":
        with pytest.raises(Exception, match="no sparse conversion"):
            open_frames(path, "sparse")


def test_scan_events_equal_the_opencv_backends(tmp_path):
    video = make_video(tmp_path / "cuts.mp4", [(1.5, "noise"), (2.0, "bars"), (1.0, (200, 40, 40)),
                                               (2.0, "checker")], fps=24, size=(640, 360))

    def events(backend):
        scanner = VideoScanner(video.path, backend=backend)
        out = [(type(e).__name__, e.frame_index, e.time_s,
                e.rgb.tobytes() if isinstance(e, SampledFrame) else None) for e in scanner]
        return scanner, out

    sparse, ev_sparse = events("sparse")
    opencv, ev_opencv = events("opencv")
    assert ev_sparse == ev_opencv
    assert sparse.result.cuts == opencv.result.cuts == video.cut_frames
    assert sum(1 for e in ev_sparse if e[0] == SceneCut.__name__) == len(video.cut_frames)
