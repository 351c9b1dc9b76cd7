"""`salova ask` reports the scores and frames the index implies, recomputed here from the stored arrays.

Zero-shot: a moment's score is the cosine of its segment's stored joint vector with the question's joint
vector, the moments are the top-K of those cosines in time order, and ``at_s`` is the time of the segment's
1-FPS frame whose stored joint vector is closest to the question. With a checkpoint: the scores are the
SR-Router's on the video's stored routing tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cli_helpers import cli
from tests.index_reader import RawIndex
from tests.retrieval.library import make_fading_library, make_library, run_cli

QUESTIONS = ["when is the red scene?", "a green checkerboard", "static noise on the screen"]


@pytest.fixture(scope="module")
def zero_shot_index(tmp_path_factory, clip_dir):
    """Two videos of four 4-s fading scenes: four distinct 1-FPS frames per segment."""
    root = tmp_path_factory.mktemp("ask_zero_shot")
    videos = make_fading_library(root / "videos", n=2, scenes=4, seconds=4.0)
    assert run_cli("index", root / "videos", "--index", root / "idx", "--encoder", clip_dir, "--device", "cpu",
                   "--quiet") == 0
    return videos, root / "idx"


def expected_zero_shot(raw: RawIndex, video, q: np.ndarray, k: int) -> list[dict]:
    joint = raw.joint()
    segs = raw.segments(video.path)
    cos = []
    for s in segs:
        v = np.asarray(joint[s.vec_row], np.float64)
        cos.append(float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q))))
    order = sorted(range(len(segs)), key=lambda i: -cos[i])[:k]
    moments = []
    for rank, i in enumerate(order, start=1):
        times, fj = raw.segment_frames(segs[i])
        at = float(times[int(np.argmax(fj.astype(np.float64) @ q))])
        moments.append({"rank": rank, "segment": i, "start_s": segs[i].start_s, "end_s": segs[i].end_s,
                        "at_s": at, "score": cos[i]})
    return sorted(moments, key=lambda m: m["start_s"])


def test_zero_shot_moments_are_the_stored_cosines_and_best_frames(capsys, zero_shot_index, text_joint):
    videos, index = zero_shot_index
    raw = RawIndex(index)
    later_frames = 0
    for question in QUESTIONS:
        q = text_joint(question)
        for video in videos:
            run = cli(capsys, "ask", video.path, question, "--index", index, "--top-k", "3", "--json", "--device",
                      "cpu")
            assert run.code == 0, run.err
            got = run.json()["moments"]
            want = expected_zero_shot(raw, video, q, k=3)
            assert [(m["rank"], m["segment"], m["start_s"], m["end_s"]) for m in got] == \
                   [(m["rank"], m["segment"], m["start_s"], m["end_s"]) for m in want]
            assert [m["score"] for m in got] == pytest.approx([m["score"] for m in want], abs=1e-5)
            assert [m["at_s"] for m in got] == [m["at_s"] for m in want]
            later_frames += sum(m["at_s"] > m["start_s"] for m in want)
    assert later_frames > 0  # some best frame is not its segment's first: at_s was really chosen


@pytest.fixture(scope="module")
def router_index(tmp_path_factory, salova_retrieval_dir):
    root = tmp_path_factory.mktemp("ask_router")
    videos = make_library(root / "videos", n=1, scenes=6, seconds=1.5)
    assert run_cli("index", root / "videos", "--index", root / "idx", "--model", salova_retrieval_dir,
                   "--device", "cpu", "--quiet") == 0
    return videos, root / "idx"


def test_router_moments_are_the_router_on_stored_routing_tokens(capsys, router_index, salova_retrieval_dir):
    from salova.models.salova import Salova

    videos, index = router_index
    video = videos[0]
    raw = RawIndex(index)
    segs = raw.segments(video.path)
    routing = torch.from_numpy(np.array([raw.routing()[s.vec_row] for s in segs], np.float32))  # [n, d]
    model = Salova.from_pretrained(salova_retrieval_dir, load_llm=False)
    question = "when is the red scene?"
    with torch.inference_mode():
        want = model.score(routing, question).float().numpy()  # [n], one video, no padding
    run = cli(capsys, "ask", video.path, question, "--index", index, "--top-k", "3", "--json", "--device", "cpu")
    assert run.code == 0, run.err
    result = run.json()
    assert result["mode"] == "router"
    top = sorted(range(len(segs)), key=lambda i: -want[i])[:3]
    got = sorted(result["moments"], key=lambda m: m["rank"])
    assert [m["segment"] for m in got] == top
    assert [m["score"] for m in got] == pytest.approx([float(want[i]) for i in top], abs=1e-5)
