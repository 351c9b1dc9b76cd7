"""The speech channel at question time: segment scores (dense + BM25) and what a speech match points at.

The channel matches every transcript line (about a sentence) and every chunk (a few sentences; ``chunks.py``).
A line's or chunk's speech score is ``max(cosine, 0) + BM25_WEIGHT * bm25 / best_bm25``: the sentence-embedding cosine
of the question with the chunk (meaning), plus up to ``BM25_WEIGHT`` for the exact words (bm25s, English
stopwords, normalised by the best BM25 score among the chunks scored). A segment's speech score is its best
line's or chunk's; segments with no matching speech get NaN (the channel does not rank them). ``at_s`` of a speech match
is the start of the first word of the chunk's sentence closest to the question.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salova.speech import tables
from salova.speech.models import TextEncoder

BM25_WEIGHT = 0.2  # the most exact words add to a chunk's cosine


class SpeechChannel:
    """Reads the index's speech rows (once per snapshot) and scores questions against them."""

    mode = "speech"

    def __init__(self, root: Path, encoder: TextEncoder):
        self.root, self.encoder = root, encoder
        self._rows: tables.SpeechRows | None = None
        self._bm25 = None
        self._loaded = False
        self._query_cache: tuple[str, np.ndarray, np.ndarray] | None = None

    def invalidate(self) -> None:
        """Forget the loaded rows (the index changed)."""
        self._rows, self._bm25, self._loaded, self._query_cache = None, None, False, None

    def _load(self) -> tables.SpeechRows | None:
        if not self._loaded:
            import bm25s

            self._rows = tables.read_chunks(self.root)
            if self._rows is not None:
                self._bm25 = bm25s.BM25()
                self._bm25.index(bm25s.tokenize(self._rows.text, stopwords="en", show_progress=False),
                                 show_progress=False)
            self._loaded = True
        return self._rows

    def _chunk_scores(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(dense cosine [c], BM25 [c]) of every chunk in the index, cached for the last question."""
        if self._query_cache is None or self._query_cache[0] != query:
            import bm25s

            rows = self._load()
            q = self.encoder.encode([query])[0]  # [d]
            dense = rows.vecs @ q
            words = bm25s.tokenize([query], stopwords="en", return_ids=False, show_progress=False)[0]
            lexical = np.asarray(self._bm25.get_scores(words), np.float64) if words else np.zeros(len(dense))
            self._query_cache = (query, dense, lexical)
        return self._query_cache[1], self._query_cache[2]

    def _combine(self, dense: np.ndarray, lexical: np.ndarray) -> np.ndarray:
        top = lexical.max() if len(lexical) else 0.0
        bonus = BM25_WEIGHT * lexical / top if top > 0 else np.zeros_like(lexical)
        return np.maximum(dense, 0.0) + bonus

    @property
    def has_speech(self) -> bool:
        return self._load() is not None

    def segment_scores(self, video_id: int, n_segments: int, query: str) -> np.ndarray | None:
        """Speech scores [n_segments] of one video (NaN where nothing matches); None if it has no speech."""
        rows = self._load()
        if rows is None:
            return None
        mine = np.flatnonzero(rows.video_id == video_id)
        if not len(mine):
            return None
        dense, lexical = self._chunk_scores(query)
        chunk = self._combine(dense[mine], lexical[mine])
        out = np.full(n_segments, np.nan)
        for c, s in zip(mine, chunk, strict=True):
            seg = int(rows.segment[c])
            if 0 <= seg < n_segments and s > 0 and not s <= np.nan_to_num(out[seg], nan=-1.0):
                out[seg] = s
        return out

    def search(self, query: str, k: int) -> list[tuple[int, int, float]]:
        """The ``k`` best (video_id, segment, speech score) across the index, one per segment."""
        rows = self._load()
        if rows is None:
            return []
        dense, lexical = self._chunk_scores(query)
        scores = self._combine(dense, lexical)
        out, seen = [], set()
        for c in np.argsort(-scores, kind="stable"):
            key = (int(rows.video_id[c]), int(rows.segment[c]))
            if scores[c] <= 0 or len(out) >= k:
                break
            if key not in seen:
                seen.add(key)
                out.append((*key, float(scores[c])))
        return out

    def transcript(self, video_id: int, start_s: float, end_s: float) -> list[tuple[float, float, str]]:
        """The lines that start inside [start_s, end_s) (the answerers' hook, ``context.transcript_for``)."""
        return [(s, e, t) for s, e, t, _ in tables.read_lines(self.root, video_id) if start_s <= s < end_s]

    def match(self, video_id: int, start_s: float, end_s: float, query: str) -> tuple[float, str] | None:
        """(at_s, the line) for the segment's line closest to the question: at_s = its first word's start."""
        lines = [ln for ln in tables.read_lines(self.root, video_id) if start_s <= ln[0] < end_s]
        if not lines:
            return None
        vecs = self.encoder.encode([ln[2] for ln in lines])  # [l x d]
        q = self.encoder.encode([query])[0]
        best = lines[int(np.argmax(vecs @ q))]
        return float(best[3]), best[2]
