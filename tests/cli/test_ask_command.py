"""`salova ask` and `salova search` end to end through the CLI."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_index_command import FPS, library
from tests.cli_helpers import cli

MOMENT_KEYS = {"rank", "segment", "start_s", "end_s", "at_s", "score"}


@pytest.fixture()
def indexed(capsys, tmp_path, clip_dir):
    videos = library(tmp_path / "videos", n=2, scenes=6, seconds=1.5)
    index = tmp_path / "idx"
    run = cli(capsys, "index", videos[0].path.parent, "--index", index, "--encoder", clip_dir, "--quiet")
    assert run.code == 0, run.err
    return videos, index


def test_ask_zero_shot_json(capsys, indexed):
    videos, index = indexed
    run = cli(capsys, "ask", videos[0].path, "when is the red scene?", "--index", index, "--top-k", "3", "--json")
    assert run.code == 0, run.err
    out = run.json()
    assert set(out) >= {"video", "question", "model", "answer", "moments", "timings", "mode"}
    assert out["answer"] is None and out["mode"] == "zero-shot" and "zero-shot" in out["note"]
    assert len(out["moments"]) == 3
    assert all(set(m) >= MOMENT_KEYS for m in out["moments"])
    starts = [m["start_s"] for m in out["moments"]]
    assert starts == sorted(starts)  # time order
    assert sorted(m["rank"] for m in out["moments"]) == [1, 2, 3]
    for m in out["moments"]:
        assert m["start_s"] <= m["at_s"] < m["end_s"]
    by_rank = sorted(out["moments"], key=lambda m: m["rank"])
    assert [m["score"] for m in by_rank] == sorted((m["score"] for m in by_rank), reverse=True)


def test_ask_human_output_and_top_k_larger_than_segments(capsys, indexed):
    videos, index = indexed
    run = cli(capsys, "ask", videos[0].path, "the green scene", "--index", index, "--top-k", "50")
    assert run.code == 0
    lines = [ln for ln in run.out.splitlines() if ln.strip().startswith("#")]
    assert len(lines) == 6 and "00:00:0" in lines[0]
    assert "zero-shot" in run.err


def test_ask_indexes_a_new_video_first(capsys, tmp_path, indexed, clip_dir):
    _, index = indexed
    from salova.testing.videos import make_video

    new = make_video(tmp_path / "new.mp4", [(2.0, (10, 10, 10)), (2.0, (250, 250, 250))], fps=FPS, size=(96, 64))
    run = cli(capsys, "ask", new.path, "white", "--index", index, "--json")
    assert run.code == 0, run.err
    assert [m["start_s"] for m in run.json()["moments"]] == [0.0, 2.0]


def test_ask_with_trained_checkpoint_answers(capsys, tmp_path, salova_dir):
    videos = library(tmp_path / "videos", n=1, scenes=3)
    index = tmp_path / "idx"
    run = cli(capsys, "index", videos[0].path, "--index", index, "--model", salova_dir, "--quiet")
    assert run.code == 0, run.err
    # --model defaults to the index's own checkpoint
    out = cli(capsys, "ask", videos[0].path, "what happens?", "--index", index, "--json", "--max-new-tokens", "3")
    assert out.code == 0, out.err
    result = out.json()
    assert result["mode"] == "router" and isinstance(result["answer"], str) and result["note"] is None
    assert len(result["moments"]) == 3
    no_answer = cli(capsys, "ask", videos[0].path, "what happens?", "--index", index, "--json", "--no-answer")
    assert no_answer.json()["answer"] is None


def test_batch_questions_with_a_bad_line(capsys, tmp_path, indexed):
    videos, index = indexed
    qfile = tmp_path / "q.jsonl"
    lines = [
        json.dumps({"video": str(videos[0].path), "question": "red"}),
        "{not json",
        json.dumps({"video": str(tmp_path / "nope.mp4"), "question": "red"}),
        json.dumps({"video": str(videos[1].path), "question": "blue"}),
        json.dumps({"video": str(videos[1].path), "question": ""}),
    ]
    qfile.write_text("\n".join(lines) + "\n")
    run = cli(capsys, "ask", "--questions", qfile, "--index", index, "--top-k", "2")
    assert run.code == 1
    results = [json.loads(ln) for ln in run.out.splitlines()]
    assert [r["line"] for r in results] == [1, 2, 3, 4, 5]
    assert ["error" in r for r in results] == [False, True, True, False, True]
    assert len(results[0]["moments"]) == 2 and "nope.mp4" in results[2]["error"]
    # a video plus a file of plain questions
    plain = tmp_path / "plain.txt"
    plain.write_text("red\ngreen\n")
    run = cli(capsys, "ask", videos[0].path, "--questions", plain, "--index", index)
    assert run.code == 0 and len(run.out.splitlines()) == 2


def test_plot_written(capsys, tmp_path, indexed):
    videos, index = indexed
    png = tmp_path / "scores.png"
    run = cli(capsys, "ask", videos[0].path, "red", "--index", index, "--plot", png, "--json")
    assert run.code == 0, run.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def test_search_across_the_library(capsys, indexed):
    videos, index = indexed
    run = cli(capsys, "search", "red scene", "--index", index, "--limit", "4", "--json")
    assert run.code == 0, run.err
    hits = run.json()["hits"]
    assert len(hits) == 4 and {h["video"] for h in hits} <= {str(v.path.resolve()) for v in videos}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    human = cli(capsys, "search", "red scene", "--index", index, "--limit", "2")
    assert len(human.out.splitlines()) == 2 and "video_" in human.out


@pytest.mark.parametrize(
    "args,needle,code",
    [
        (["ask", "{video}", "   "], "empty", 2),  # usage errors exit 2
        (["ask", "{tmp}/nope.mp4", "what"], "nope.mp4", 2),
        (["search", "x", "--index", "{tmp}/no-index"], "no index", 2),
        (["ask", "{video}", "what", "--model", "{tmp}/no-ckpt"], "no-ckpt", 1),  # other errors exit 1
        (["ask", "{video}", "what", "--top-k", "0"], "top-k", 2),
    ],
)
def test_errors_are_one_line(capsys, tmp_path, indexed, args, needle, code):
    videos, index = indexed
    args = [a.format(video=videos[0].path, tmp=tmp_path) for a in args]
    if "--index" not in args:
        args += ["--index", str(index)]
    run = cli(capsys, *args)
    assert run.code == code and needle in run.err
    assert "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1


def test_model_index_mismatch_is_clear(capsys, indexed, siglip_dir):
    videos, index = indexed
    run = cli(capsys, "ask", videos[0].path, "red", "--index", index, "--encoder", siglip_dir)
    assert run.code == 1 and "rebuild" in run.err and "Traceback" not in run.err
