"""`salova search` returns what the README says, recomputed here from the stored arrays.

Zero-shot: the ``--limit`` segments of the whole library with the highest cosine of their stored joint vector
with the query's. With a checkpoint: FAISS picks the ``--limit`` best candidate videos by joint-space
similarity, the SR-Router re-scores every segment of those videos, and the best router scores are the hits;
so a segment that FAISS did not return can be a hit, and a video FAISS did not pick never is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.cli_helpers import cli
from tests.index_reader import IndexStore, RawIndex
from tests.retrieval.library import make_distinct_library, run_cli

QUERIES = ["a red scene", "static noise", "yellow", "a dog catching a frisbee"]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    make_distinct_library(root / "videos", n=4, scenes=5, seconds=1.0)
    return root


@pytest.fixture(scope="module")
def router_index(library, salova_retrieval_dir):
    index = library / "idx_router"
    assert run_cli("index", library / "videos", "--index", index, "--model", salova_retrieval_dir, "--device",
                   "cpu", "--quiet") == 0
    return index


@pytest.fixture(scope="module")
def zero_shot_index(library, clip_dir):
    index = library / "idx_zero_shot"
    assert run_cli("index", library / "videos", "--index", index, "--encoder", clip_dir, "--device", "cpu",
                   "--quiet") == 0
    return index


@pytest.fixture(scope="module")
def router(salova_retrieval_dir):
    from salova.models.salova import Salova

    return Salova.from_pretrained(salova_retrieval_dir, load_llm=False)


def cosines(raw: RawIndex, q: np.ndarray) -> dict[tuple[str, int], float]:
    """(video path, segment) -> cosine of its stored joint vector with q, for the whole library."""
    joint = raw.joint()
    out = {}
    for path in raw.paths:
        for s in raw.segments(path):
            v = np.asarray(joint[s.vec_row], np.float64)
            out[(path, s.idx)] = float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q)))
    return out


def router_scores(raw: RawIndex, router, path: str, query: str) -> list[float]:
    """The SR-Router on one video's stored routing tokens alone (no batch, no padding)."""
    routing = torch.from_numpy(np.array([raw.routing()[s.vec_row] for s in raw.segments(path)], np.float32))
    with torch.inference_mode():
        return router.score(routing, query).float().tolist()


def hits_of(run) -> list[tuple[str, int, float]]:
    return [(h["video"], h["segment"], h["score"]) for h in run.json()["hits"]]


def test_zero_shot_search_is_the_library_wide_top_cosines(capsys, zero_shot_index, text_joint):
    raw = RawIndex(zero_shot_index)
    for query in QUERIES:
        run = cli(capsys, "search", query, "--index", zero_shot_index, "--limit", "4", "--json", "--device", "cpu")
        assert run.code == 0, run.err
        assert run.json()["mode"] == "zero-shot"
        cos = cosines(raw, text_joint(query))
        want = sorted(cos, key=lambda key: -cos[key])[:4]
        got = hits_of(run)
        assert [(v, i) for v, i, _ in got] == want
        assert [s for _, _, s in got] == pytest.approx([cos[k] for k in want], abs=1e-5)


def test_router_search_rescores_every_segment_of_the_best_candidate_videos(capsys, router_index, router, text_joint):
    raw = RawIndex(router_index)
    limit = 2
    restricted = 0  # queries whose best router hits over the whole library lie outside the candidate videos
    for query in QUERIES:
        run = cli(capsys, "search", query, "--index", router_index, "--limit", str(limit), "--json", "--device",
                  "cpu")
        assert run.code == 0, run.err
        assert run.json()["mode"] == "router"
        cos = cosines(raw, text_joint(query))
        best_cos = {p: max(c for (v, _), c in cos.items() if v == p) for p in raw.paths}
        candidates = sorted(raw.paths, key=lambda p: -best_cos[p])[:limit]  # the `limit` best candidate videos
        scored = {(p, i): s for p in raw.paths for i, s in enumerate(router_scores(raw, router, p, query))}
        want = sorted((k for k in scored if k[0] in candidates), key=lambda k: -scored[k])[:limit]
        got = hits_of(run)
        assert [(v, i) for v, i, _ in got] == want, query
        assert [s for _, _, s in got] == pytest.approx([scored[k] for k in want], abs=1e-5)
        restricted += sorted(scored, key=lambda k: -scored[k])[:limit] != want
    # the candidate-video step mattered for some query: a library-wide router scan would have answered otherwise
    assert restricted > 0


def test_router_search_hit_can_be_a_segment_faiss_did_not_return(capsys, monkeypatch, router_index, router):
    """FAISS (wrapped to return only its single best segment) names one video; every segment of that video is
    re-scored, so the hits are that video's best router segments, most of them never returned by FAISS."""
    returned = []
    real = IndexStore.search_joint

    def only_the_best(self, q, k, **options):
        hits = real(self, q, k, **options)[:1]
        returned.extend(hits)
        return hits

    monkeypatch.setattr(IndexStore, "search_joint", only_the_best)
    raw = RawIndex(router_index)
    paths = {vid: path for path, (vid, _) in raw.videos.items()}
    query = "a red scene"
    run = cli(capsys, "search", query, "--index", router_index, "--limit", "3", "--json", "--device", "cpu")
    assert run.code == 0, run.err
    assert len(returned) == 1
    vid, seg, _ = returned[0]
    video = paths[vid]
    scores = router_scores(raw, router, video, query)
    want = sorted(range(len(scores)), key=lambda i: -scores[i])[:3]
    got = hits_of(run)
    assert [(v, i) for v, i, _ in got] == [(video, i) for i in want]
    assert [s for _, _, s in got] == pytest.approx([scores[i] for i in want], abs=1e-5)
    assert len([i for _, i, _ in got if i != seg]) >= 2  # hits FAISS never returned
