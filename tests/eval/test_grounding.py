"""Temporal grounding end to end on videos whose answer is known: colour scenes of 3 s, a query the tiny encoder
matches to one colour (zero-shot, chosen from its own scores), and truth windows placed to give hand-computed
metrics: exact (IoU 1), half (IoU 0.5) and wrong (IoU 0)."""

from __future__ import annotations

import json
import subprocess

import pytest

from salova.eval.grounding import read_annotations
from salova.testing.videos import make_video
from tests.cli_helpers import cli, cli_env
from tests.eval.conftest import COLOURS, SIZE
from tests.eval.test_niah import SALOVA

QUERY = "a plain screen"
EXPECTED = {"R1@0.3": 2 / 3, "R1@0.5": 2 / 3, "R1@0.7": 1 / 3, "R5@0.3": 1.0, "R5@0.5": 1.0, "R5@0.7": 2 / 3,
            "mIoU": 0.5, "hit@1": 2 / 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, zero_shot):
    needle, others = zero_shot.separable(QUERY)
    root = tmp_path_factory.mktemp("grounding")
    videos = root / "videos"
    make_video(videos / "v1.mp4", [(3.0, COLOURS[c]) for c in (others[0], needle, others[1])], fps=10, size=SIZE)
    make_video(videos / "v2.mp4", [(3.0, COLOURS[c]) for c in (others[1], others[2], others[0], needle)], fps=10,
               size=SIZE)
    charades = root / "charades.txt"
    charades.write_text(f"v1 3.0 6.0##{QUERY}\n"  # the needle scene: IoU 1
                        f"v2 6.0 12.0##{QUERY}\n"  # the needle scene and the one before: IoU 0.5
                        f"v1 0.0 3.0##{QUERY}\n"  # a distractor: IoU 0, but within the top 5
                        f"missing 0.0 1.0##{QUERY}\n")
    return root, videos, charades


def test_charades_contract_through_the_console_script(tmp_path, dataset, clip_dir):
    root, videos, charades = dataset
    preds = tmp_path / "per_query.jsonl"
    args = ["eval", "grounding", "--annotations", charades, "--videos", videos, "--index", tmp_path / "idx",
            "--encoder", clip_dir, "--predictions", preds, "--json"]
    run = subprocess.run([SALOVA, *map(str, args)], capture_output=True, text=True, env=cli_env(), timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["n"] == 3 and out["skipped"] == {"missing_video": 1, "not_indexed": 0}
    assert {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "hit@1"} <= set(out["metrics"])
    assert out["metrics"] == pytest.approx(EXPECTED)
    assert all(0.0 <= v <= 1.0 for v in out["metrics"].values())
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert [x["IoU"] for x in lines] == pytest.approx([1.0, 0.5, 0.0])
    assert lines[0]["pred"][0][:2] == [3.0, 6.0] and lines[1]["pred"][0][:2] == [9.0, 12.0]


def test_qvhighlights_resume_and_table(capsys, tmp_path, dataset, clip_dir):
    root, videos, _ = dataset
    qvh = tmp_path / "qvh.jsonl"
    rows = [{"qid": 7, "query": QUERY, "vid": "v2", "duration": 12, "relevant_windows": [[0, 3], [9, 12]]},
            {"qid": 8, "query": QUERY, "vid": "v1", "duration": 9, "relevant_windows": [[4.5, 6]]}]
    qvh.write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = tmp_path / "p.jsonl"
    args = ["eval", "grounding", "--annotations", qvh, "--videos", videos, "--index", tmp_path / "idx",
            "--encoder", clip_dir, "--predictions", preds]
    first = cli(capsys, *args, "--json")
    assert first.code == 0, first.err
    m = first.json()["metrics"]
    assert first.json()["format"] == "qvhighlights"
    # qid 7: the top moment (9-12) is one of two truth windows (IoU 1); qid 8: (3-6) vs (4.5-6): IoU 0.5
    assert m["mIoU"] == pytest.approx(0.75) and m["R1@0.5"] == 1.0 and m["R1@0.7"] == 0.5 and m["hit@1"] == 1.0
    before = preds.read_text()
    again = cli(capsys, *args, "--resume")
    assert again.code == 0 and preds.read_text() == before
    assert "mIoU" in again.out and "0.750" in again.out and "2 queries (qvhighlights" in again.out


def test_annotation_parsing(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("AO8RW 0.0 6.9##a person is putting a book on a shelf.\n\nY6R7T 1.5 3##someone opens a door\n")
    fmt, queries = read_annotations(f)
    assert fmt == "charades" and [(q.video, q.windows, q.query) for q in queries] == [
        ("AO8RW", [(0.0, 6.9)], "a person is putting a book on a shelf."),
        ("Y6R7T", [(1.5, 3.0)], "someone opens a door"),
    ]


@pytest.mark.parametrize(("content", "extra", "message"), [
    ("v1 0 x##q\n", [], "--annotations a.txt line 1: not charades"),
    ('{"qid": 1, "query": "q", "vid": "v1", "relevant_windows": []}\n', [], "line 1: not qvhighlights"),
    ("v1 0 1##q\n", ["--format", "srt"], "--format 'srt': expected one of"),
    ("v1 0 1##q\n", ["--resume"], "--resume needs the per-query file"),
    ("zzz 0 1##q\n", [], "none of the annotated videos is in"),
])
def test_grounding_usage_errors_are_one_line(capsys, tmp_path, dataset, content, extra, message):
    _, videos, _ = dataset
    ann = tmp_path / "a.txt"
    ann.write_text(content)
    run = cli(capsys, "eval", "grounding", "--annotations", ann, "--videos", videos, "--index", tmp_path / "i",
              "--encoder", "/nonexistent-is-never-loaded-first", *extra)
    assert run.code == 2, run.err
    assert message in run.err and len(run.err.strip().splitlines()) == 1
