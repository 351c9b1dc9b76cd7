"""V-NIAH end to end on a tiny grid (2 lengths x 3 depths).

Default run: zero-shot with a needle the tiny random encoder separates from the haystack (chosen from its own
zero-shot scores) is found in every cell, through the installed console script (JSON + heatmap); an untrained
router is near chance; resume redoes nothing. Slow set: a router trained in the test (~200 steps) finds the needle
in every cell.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from salova.errors import UsageError
from salova.eval.haystack import Needle, SyntheticHaystack, needle_position, write_cell
from salova.eval.niah import NiahOptions
from salova.testing.videos import make_video
from tests.cli_helpers import cli, cli_env
from tests.eval.conftest import COLOURS, SIZE, colour_image

SALOVA = str(Path(sys.executable).with_name("salova"))
GRID = ["--lengths", "12,20", "--depths", "0,0.5,1"]


def niah_args(out, ckpt, haystack, image):
    return ["eval", "niah", "--output", out, "--model", ckpt, "--haystack", haystack, "--needle-image", image,
            "--question", "when is the blue scene?", "--answer", "blue", "--size", f"{SIZE[0]}x{SIZE[1]}", *GRID]


def check_every_needle_found(summary: dict, out: Path) -> None:
    assert summary["n"] == 6
    assert summary["metrics"]["hit@1"] == 1.0, summary["grid"]
    assert summary["metrics"]["hit@5"] == 1.0
    assert summary["metrics"]["exact_match"] is None  # no LLM in the checkpoint
    assert summary["grid"] == {"lengths": [12, 20], "depths": [0.0, 0.5, 1.0], "hit@1": [[1.0, 1.0]] * 3}
    cells = [json.loads(x) for x in (out / "cells.jsonl").read_text().splitlines()]
    assert {c["cell"] for c in cells} == {"12@0", "12@0.5", "12@1", "20@0", "20@0.5", "20@1"}
    for c in cells:  # the needle (1 s) is its own segment, found first
        assert c["rank"] == 1 and len(c["needle_segments"]) == 1
        start, end, _ = c["top"][0]
        assert (start, end) == tuple(c["needle_s"])


def test_zero_shot_finds_a_separable_needle_through_the_console_script(tmp_path, clip_dir, zero_shot):
    question = "a plain screen"
    needle, haystack = zero_shot.separable(question)
    assert len(haystack) >= 3, "the tiny encoder separates too few colours for this test"
    hay = make_video(tmp_path / "hay.mp4", [(3.0, COLOURS[c]) for c in haystack * 3], fps=10, size=SIZE)
    image = colour_image(tmp_path / "needle.png", needle)
    plot, out = tmp_path / "grid.png", tmp_path / "run"
    args = ["eval", "niah", "--output", out, "--encoder", clip_dir, "--haystack", hay.path, "--needle-image", image,
            "--question", question, "--size", f"{SIZE[0]}x{SIZE[1]}", *GRID, "--json", "--plot", plot]
    run = subprocess.run([SALOVA, *map(str, args)], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["mode"] == "zero-shot"
    check_every_needle_found(summary, out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and summary["plot"] == str(plot)


@pytest.mark.slow
def test_trained_router_finds_every_needle(capsys, tmp_path, needle_ckpt, haystack_video, blue_image):
    run = cli(capsys, *niah_args(tmp_path / "run", needle_ckpt, haystack_video.path, blue_image), "--json")
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["mode"] == "router"
    check_every_needle_found(summary, tmp_path / "run")


def test_untrained_router_is_near_chance_and_resume_redoes_nothing(capsys, tmp_path, random_ckpt, haystack_video,
                                                                  blue_image):
    out = tmp_path / "run"
    args = niah_args(out, random_ckpt, haystack_video.path, blue_image)
    first = cli(capsys, *args, "--json")
    assert first.code == 0, first.err
    m = first.json()["metrics"]
    assert m["hit@1"] <= 0.5 and m["hit@1"] <= m["chance@1"] + 0.35, m
    lines = (out / "cells.jsonl").read_text()
    again = cli(capsys, *args, "--json", "--resume")
    assert again.code == 0 and again.json()["metrics"] == m
    assert (out / "cells.jsonl").read_text() == lines
    # a grown grid only runs the new cells
    grown = cli(capsys, *args[:-2], "--depths", "0,0.5,0.75,1", "--json", "--resume")
    assert grown.code == 0 and grown.json()["n"] == 8
    # other settings cannot be mixed into the same run
    other = cli(capsys, *[("when is the red scene?" if a == "when is the blue scene?" else a) for a in args],
                "--resume")
    assert other.code == 2 and "other settings (question)" in other.err and "Traceback" not in other.err


def test_synthetic_default_cell_puts_the_needle_where_asked(tmp_path):
    hay = SyntheticHaystack(SIZE, seed=0)
    needle = Needle.load(SIZE, seconds=2)
    assert (needle.answer, needle.source) == ("red", "synthetic")
    assert needle_position(30, 2, 0.0) == 0 and needle_position(30, 2, 1.0) == 28 and needle_position(30, 2, 0.5) == 14
    window = write_cell(tmp_path / "cell.mp4", hay, needle, 30, 0.5)
    assert window == (14.0, 16.0)
    from salova.video import SceneCut, VideoScanner

    with VideoScanner(tmp_path / "cell.mp4") as scan:
        events = list(scan)
    cuts = [e.time_s for e in events if isinstance(e, SceneCut)]
    assert 14.0 in cuts and 16.0 in cuts  # the needle is a scene of its own
    assert sum(not isinstance(e, SceneCut) for e in events) == 30  # one sampled frame per cell frame


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "huge"], "--preset 'huge': expected one of"),
    (["--depths", "0,1.5"], "--depths must lie in [0, 1]"),
    (["--lengths", "1"], "--lengths need at least 2 frames"),
    (["--needle-image", "x.png"], "--question a custom needle needs its question"),
    (["--size", "64"], "--size '64': expected WxH"),
])
def test_niah_usage_errors_are_one_line(capsys, tmp_path, args, message):
    run = cli(capsys, "eval", "niah", "--output", tmp_path / "o", *args)
    assert run.code == 2 and message in run.err and len(run.err.strip().splitlines()) == 1


def test_library_options_validate_together():
    with pytest.raises(UsageError) as info:
        NiahOptions(output=Path("x"), lengths=(1,), depths=(2.0,), top_k=0)
    assert {f for f, _ in info.value.problems} == {"lengths", "depths", "top_k"}
