"""Multiple choice: the three release formats parse; a 3-question Video-MME parquet runs end to end with the
zero-shot retrieval rule, whose choices the test predicts from the tiny encoder's own scores (so accuracy is
known: two labels agree with the rule, one on purpose does not); --limit, --resume; the LLM path extracts a
letter from the reply."""

from __future__ import annotations

import json

import duckdb
import pytest

from salova.eval.mcq import McqItem, duration_group, prompt, read_mcq
from salova.testing.videos import make_video
from tests.cli_helpers import cli
from tests.eval.conftest import COLOURS, SIZE

OPTIONS = ["red", "green", "blue", "white"]
QUESTIONS = ["which colour is shown?", "what is on the screen?", "a plain screen"]


def write_videomme(path, rows):
    con = duckdb.connect()
    con.execute("CREATE TABLE t (video_id VARCHAR, duration VARCHAR, domain VARCHAR, sub_category VARCHAR, "
                "url VARCHAR, videoID VARCHAR, question_id VARCHAR, task_type VARCHAR, question VARCHAR, "
                "options VARCHAR[], answer VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    con.close()


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, zero_shot):
    needle, others = zero_shot.separable("a plain screen")
    looks = [others[0], needle, others[1]]
    root = tmp_path_factory.mktemp("mcq")
    make_video(root / "videos" / "abc123.mp4", [(3.0, COLOURS[c]) for c in looks], fps=10, size=SIZE)
    expected = []
    for q in QUESTIONS:  # the rule: each option's best score over the video's segments (top-5 = all 3 here)
        scores = sorted(((max(zero_shot.scores(f"{o}. {q}")[c] for c in looks), i) for i, o in enumerate(OPTIONS)),
                        reverse=True)
        assert scores[0][0] - scores[1][0] > 0.01, "the tiny encoder does not separate these options"
        expected.append("ABCD"[scores[0][1]])
    wrong = "ABCD"[("ABCD".index(expected[2]) + 1) % 4]  # the third label disagrees with the rule
    labels = [expected[0], expected[1], wrong]
    groups = [("short", "Counting"), ("short", "Counting"), ("medium", "Object Recognition")]
    rows = [("001", d, "Knowledge", "Humanity", "https://x", "abc123", f"001-{i + 1}", cat, q,
             [f"{'ABCD'[j]}. {o}" for j, o in enumerate(OPTIONS)], label)
            for i, (q, label, (d, cat)) in enumerate(zip(QUESTIONS, labels, groups, strict=True))]
    write_videomme(root / "videomme.parquet", rows)
    return root, expected


def test_videomme_zero_shot_rule_accuracy_by_group_and_resume(capsys, tmp_path, benchmark, clip_dir):
    root, expected = benchmark
    preds = tmp_path / "preds.jsonl"
    args = ["eval", "mcq", "--annotations", root / "videomme.parquet", "--videos", root / "videos",
            "--index", tmp_path / "idx", "--encoder", clip_dir, "--predictions", preds]
    run = cli(capsys, *args, "--json")
    assert run.code == 0, run.err
    out = run.json()
    assert out["format"] == "videomme" and out["rule"] == "retrieval" and out["n"] == 3
    assert out["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert out["by_duration"] == {"medium": {"n": 1, "accuracy": 0.0}, "short": {"n": 2, "accuracy": 1.0}}
    assert out["by_category"]["Counting"] == {"n": 2, "accuracy": 1.0}
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [x["pred"] for x in lines] == expected
    assert [x["correct"] for x in lines] == [True, True, False]
    assert all(len(x["option_scores"]) == 4 and x["options"] == OPTIONS for x in lines)
    # resume: nothing is answered again; the table shows the groups
    before = preds.read_text()
    again = cli(capsys, *args, "--resume")
    assert again.code == 0 and preds.read_text() == before
    assert "overall" in again.out and "0.667" in again.out and "Object Recognition" in again.out


def test_limit_and_llm_path(capsys, tmp_path, benchmark, salova_dir):
    root, _ = benchmark
    run = cli(capsys, "eval", "mcq", "--annotations", root / "videomme.parquet", "--videos", root / "videos",
              "--index", tmp_path / "idx", "--model", salova_dir, "--limit", "1", "--max-new-tokens", "4", "--json",
              "--predictions", tmp_path / "p.jsonl")
    assert run.code == 0, run.err
    out = run.json()
    assert out["n"] == 1 and out["rule"] == "llm" and out["mode"] == "router"
    rec = json.loads((tmp_path / "p.jsonl").read_text())
    assert isinstance(rec["reply"], str) and rec["pred"] in (None, "A", "B", "C", "D")
    assert out["metrics"]["unanswered"] == float(rec["pred"] is None)


def test_longvideobench_and_mlvu_files_as_released(tmp_path):
    lvb = tmp_path / "lvb_val.json"
    lvb.write_text(json.dumps([{"video_id": "x1", "video_path": "x1.mp4", "question": "What is shown?",
                                "candidates": ["a cat", "a dog", "a bird"], "correct_choice": 2,
                                "duration_group": 600, "question_category": "S2E", "id": "x1_0"}]))
    fmt, items = read_mcq(lvb)
    assert fmt == "longvideobench"
    assert items == [McqItem("x1_0", "x1.mp4", "What is shown?", ["a cat", "a dog", "a bird"], "C", "600", "S2E")]
    mlvu = tmp_path / "json"
    mlvu.mkdir()
    (mlvu / "1_plotQA.json").write_text(json.dumps([{"video": "movie_1.mp4", "duration": 300.5, "question": "Why?",
                                                     "candidates": ["because", "no"], "answer": "no",
                                                     "question_type": "plotQA"}]))
    (mlvu / "2_needle.json").write_text(json.dumps([{"video": "n.mp4", "duration": 100, "question": "Q?",
                                                     "candidates": ["x", "y", "z"], "answer": "x",
                                                     "question_type": "needle"}]))
    fmt, items = read_mcq(mlvu)
    assert fmt == "mlvu" and [(i.answer, i.duration, i.category) for i in items] == [
        ("B", "medium", "plotQA"), ("A", "short", "needle")]
    nested = tmp_path / "videomme.json"  # the original Video-MME JSON nests questions per video
    nested.write_text(json.dumps([{"video_id": "001", "duration": "long", "videoID": "vv", "questions": [
        {"question_id": "001-1", "task_type": "OCR", "question": "Q", "options": ["A. x", "B. y"], "answer": "B"}]}]))
    assert read_mcq(nested)[1][0] == McqItem("001-1", "vv", "Q", ["x", "y"], "B", "long", "OCR")
    assert duration_group(239) == "short" and duration_group(900) == "medium" and duration_group(901) == "long"
    assert prompt(items[0]).splitlines() == ["Why?", "A. because", "B. no",
                                             "Answer with the option's letter from the given choices directly."]


@pytest.mark.parametrize(("content", "message"), [
    ([{"video": "v.mp4", "question": "q", "candidates": ["a"], "answer": "b"}], "record 1: not mlvu"),
    ([{"foo": 1}], "cannot tell the format"),
    ("not json", "cannot read"),
])
def test_mcq_usage_errors_are_one_line(capsys, tmp_path, content, message):
    ann = tmp_path / "a.json"
    ann.write_text(content if isinstance(content, str) else json.dumps(content))
    (tmp_path / "v").mkdir()
    run = cli(capsys, "eval", "mcq", "--annotations", ann, "--videos", tmp_path / "v", "--index", tmp_path / "i")
    assert run.code == 2 and message in run.err and len(run.err.strip().splitlines()) == 1, run.err
