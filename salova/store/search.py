"""Inner-product search over the live segments of a snapshot, with FAISS files as caches.

Up to ``FLAT_MAX`` live segments the index is exact (flat). Above, it is an inverted file (IVF, ``sqrt(n)``
lists trained on a sample of the stored vectors, ``n / 16`` lists probed): about 16x less to scan, recall@10
near 1 on video features (docs/benchmarks.md, "Search at a million segments"). It is rebuilt, and retrained,
with each commit's index, so the lists follow the library as it grows. ``exhaustive=True`` probes every
list: the exact answer at flat cost.

The FAISS index of a store ('joint' | 'routing') is built once per commit: from `<store>.s<seq>.faiss` when
that file is for this commit and holds exactly the live rows, else from the array file. The writer saves
the caches when it closes; a stale cache is named after another commit and is never used.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path

import faiss
import numpy as np

from salova.store.arrays import write_atomic
from salova.store.layout import SEARCHABLE, search_cache_path, search_cache_seq
from salova.store.snapshot import Snapshot

log = logging.getLogger("salova.store")

Hit = tuple[int, int, float]  # (video id, segment idx, score)

FLAT_MAX = 200_000  # live segments searched exactly; above, an IVF index
_PROBE_FRACTION = 8  # an IVF search probes 1 / this of its lists (at least _MIN_PROBE)
_MIN_PROBE = 8
_TRAIN_PER_LIST = 64  # k-means training sample: this many vectors per list


class SegmentSearch:
    """The FAISS indexes of one store's snapshot, each built at most once per commit. Not thread-safe."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[int, tuple | None]] = {}  # store -> (seq, (index, rows, vids, idxs))

    def clear(self) -> None:
        self._built = {}

    def search(self, snap: Snapshot, store: str, query: np.ndarray, k: int, exhaustive: bool = False) -> list[Hit]:
        """Top-k live segments by inner product of `query` [1 x d] with the rows of `store`, best first.

        ``exhaustive``: scan every segment even when the index is approximate (IVF).
        """
        entry = self._index(snap, store)
        if entry is None or k <= 0:
            return []
        index, rows, vids, idxs = entry
        if query.shape[1] != index.d:
            raise ValueError(f"query has {query.shape[1]} dims, the index's {store} vectors have {index.d}")
        ivf = _ivf(index)
        if ivf is not None:
            ivf.nprobe = ivf.nlist if exhaustive else max(_MIN_PROBE, ivf.nlist // _PROBE_FRACTION)
        scores, ids = index.search(query, min(k, index.ntotal))  # [1 x k] each
        found = ids[0] >= 0
        pos = np.searchsorted(rows, ids[0][found])
        return [(int(vids[p]), int(idxs[p]), float(s)) for p, s in zip(pos, scores[0][found], strict=True)]

    def save_caches(self, snap: Snapshot) -> None:
        """Writer close: save this commit's FAISS files, delete other commits' ones."""
        for store in SEARCHABLE:
            path = search_cache_path(snap.root, store, snap.seq)
            if path.is_file():
                continue
            entry = self._index(snap, store)
            if entry is None:
                continue
            try:
                write_atomic(path, faiss.serialize_index(entry[0]).tobytes())
            except OSError as e:
                log.warning("could not save search cache %s: %s", path.name, e)
        for p in snap.root.iterdir():
            seq = search_cache_seq(p.name)
            if seq is not None and seq != snap.seq:
                with suppress(OSError):
                    p.unlink()

    def _index(self, snap: Snapshot, store: str) -> tuple | None:
        """(FAISS index over the live rows of `store`, rows, video ids, segment idxs), cached per commit."""
        built = self._built.get(store)
        if built is not None and built[0] == snap.seq:
            return built[1]
        entry = None
        rows, vids, idxs = _live(snap)
        if store in snap.files and len(rows):
            index = _read_cache(search_cache_path(snap.root, store, snap.seq), rows)
            if index is None:
                index = build_index(np.ascontiguousarray(snap.view(store)[rows]), rows)  # [rows x d]
            entry = (index, rows, vids, idxs)
        self._built[store] = (snap.seq, entry)
        return entry


def build_index(vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """A FAISS inner-product index over `vectors` [n x d] float32 with `ids` [n]: flat up to FLAT_MAX, else IVF."""
    n, d = vectors.shape
    if n <= FLAT_MAX:
        inner = faiss.IndexFlatIP(d)
    else:
        nlist = int(np.sqrt(n))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, nlist * _TRAIN_PER_LIST), replace=False)
        inner.train(vectors[np.sort(sample)])
    index = faiss.IndexIDMap(inner)
    index.add_with_ids(vectors, ids)
    return index


def _ivf(index: faiss.Index):
    """The IVF index inside an IndexIDMap, or None for a flat one."""
    inner = faiss.downcast_index(faiss.downcast_index(index).index)
    return inner if isinstance(inner, faiss.IndexIVF) else None


def _live(snap: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Live segment rows in ascending order, with their video ids and segment indices: [n] each."""
    if not snap.segments:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    segs = snap.segments
    rows = np.concatenate([s.vec_row for s in segs.values()]).astype(np.int64)
    vids = np.concatenate([np.full(len(s), v, dtype=np.int64) for v, s in segs.items()])
    idxs = np.concatenate([s.idx for s in segs.values()]).astype(np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], vids[order], idxs[order]


def _read_cache(path: Path, rows: np.ndarray) -> faiss.Index | None:
    """The saved FAISS index at `path` if it holds exactly `rows`, else None."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
        ids = faiss.vector_to_array(faiss.downcast_index(index).id_map)
    except (OSError, RuntimeError, AttributeError) as e:
        log.warning("ignoring unreadable search cache %s: %s", path.name, e)
        return None
    if index.ntotal != len(rows) or not np.array_equal(ids, rows):
        log.warning("ignoring search cache %s: it does not match the committed segments", path.name)
        return None
    return index
