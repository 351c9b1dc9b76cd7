"""A file with a corrupt middle decodes to its end: the damage is skipped to the next keyframe and the lost
stretch is reported; clean files decode exactly as before (no gaps, no warnings, the same cuts)."""

from __future__ import annotations

import pytest

from salova.testing.videos import make_corrupt_middle, make_video
from salova.video import SampledFrame, VideoScanner

SOURCE = [(3.0, "bars"), (3.0, "noise"), (3.0, (30, 200, 40))]


def _scan(path, backend):
    scanner = VideoScanner(path, backend=backend)
    events = list(scanner)
    return scanner.result, events


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("corrupt")
    out = {}
    for ext in ("mp4", "mkv"):
        src = make_video(d / f"plain.{ext}", SOURCE, fps=15, size=(96, 64))
        out[ext] = (src, make_corrupt_middle(src, d / f"corrupt.{ext}"))
    return out


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_decoding_resumes_after_a_corrupt_middle(files, ext, backend):
    src, bad = files[ext]
    result, events = _scan(bad, backend)
    # decoded to the end, not just the first part
    assert result.duration_s == pytest.approx(src.duration_s, abs=0.2)
    assert result.gaps, "the lost stretch is recorded"
    for a, b in result.gaps:
        assert 0 < a < b < src.duration_s
    assert "corrupt data" in result.warnings[0] and "resumed at the next keyframe" in result.warnings[0]
    times = [e.time_s for e in events if isinstance(e, SampledFrame)]
    assert times == sorted(set(times)) and times[-1] >= 8.0  # sampled frames after the damage too
    # cuts outside the damaged stretch are where the source has them
    lo, hi = result.gaps[0][0], result.gaps[-1][1]
    clean = [c for c in src.cut_frames if not lo - 1 <= c / src.fps <= hi + 1]
    assert set(clean) <= set(result.cuts)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_a_clean_file_has_no_gaps_and_its_cuts(files, backend):
    src, _ = files["mp4"]
    result, _ = _scan(src, backend)
    assert result.gaps == [] and result.warnings == []
    assert result.cuts == src.cut_frames
    assert result.frames_decoded == src.num_frames
