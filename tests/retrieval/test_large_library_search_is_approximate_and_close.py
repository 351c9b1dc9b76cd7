"""Above ``FLAT_MAX`` segments the search index is an IVF: its top results match the exact ones, and
``exhaustive`` gives exactly the exact scan's. Forced here with a low threshold on a small library."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import salova.store.search as search
from salova.store.store import IndexStore
from tests.retrieval.library import make_distinct_library, run_cli


def _clustered(n: int, queries: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around n // 50 centres (segments gather by video and topic), and queries near some of them."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n // 50, d)).astype(np.float32)

    def around(count: int, spread: float) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), count)] + spread * rng.standard_normal((count, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return around(n, 0.6), around(queries, 1.0)


def test_ivf_top_ten_matches_the_exact_scan(monkeypatch):
    monkeypatch.setattr(search, "FLAT_MAX", 1000)
    vectors, queries = _clustered(20_000, 200, 64)
    ids = np.arange(len(vectors), dtype=np.int64) * 3  # ids are array rows, not positions
    index = search.build_index(vectors, ids)
    ivf = search._ivf(index)
    assert ivf is not None and ivf.nlist == 141
    exact = faiss.IndexIDMap(faiss.IndexFlatIP(64))
    exact.add_with_ids(vectors, ids)
    _, want = exact.search(queries, 10)
    ivf.nprobe = max(search._MIN_PROBE, ivf.nlist // search._PROBE_FRACTION)
    _, got = index.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95
    ivf.nprobe = ivf.nlist
    _, every = index.search(queries, 10)
    np.testing.assert_array_equal(every, want)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, clip_dir):
    root = tmp_path_factory.mktemp("ivf")
    make_distinct_library(root / "videos", n=4, scenes=5, seconds=1.0)
    assert run_cli("index", root / "videos", "--index", root / "idx", "--encoder", clip_dir, "--device", "cpu",
                   "--quiet") == 0
    return root / "idx"


def test_store_switches_to_ivf_and_keeps_the_exact_top_results(index_dir, monkeypatch):
    rng = np.random.default_rng(0)
    with IndexStore.open(index_dir) as store:
        queries = [rng.standard_normal(store._snap.view("joint").shape[1]).astype(np.float32) for _ in range(5)]
        exact = [store.search_joint(q, 5) for q in queries]
    for cache in index_dir.glob("*.faiss"):
        cache.unlink()  # the writer saved a flat index for this commit
    monkeypatch.setattr(search, "FLAT_MAX", 4)
    with IndexStore.open(index_dir) as store:
        approx = [store.search_joint(q, 5) for q in queries]
        full = [store.search_joint(q, 5, exhaustive=True) for q in queries]
        assert search._ivf(store._search._index(store._snap, "joint")[0]) is not None
    for e, a, f in zip(exact, approx, full, strict=True):
        assert [h[:2] for h in f] == [h[:2] for h in e]
        np.testing.assert_allclose([h[2] for h in f], [h[2] for h in e], rtol=1e-5)
        assert [h[:2] for h in a][:3] == [h[:2] for h in e][:3]
