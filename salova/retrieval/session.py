"""A retrieval session over one index: models loaded once, then ``ask`` (one video) and ``search`` (the library).

Retrieval never decodes or re-encodes a video that is already indexed; a new or changed video is indexed
first. Scores come from the session's scorer (``scorers.py``); answers from an answerer when one is given
(``salova.answerers``: a VLM reading the moments' frames, a text LM, a chat server), otherwise from the
checkpoint's FocusFast LLM.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from salova.answerers import Answerer, build_request, cite, transcript_for
from salova.errors import IndexStoreError, UsageError, option_problem
from salova.pipeline.files import is_unchanged
from salova.pipeline.run import IndexOptions, run_index
from salova.retrieval.channels import fuse_hits, open_speech, parse_channels, score_segments, speech_moment
from salova.retrieval.results import AskResult, Moment, SearchHit
from salova.retrieval.scorers import Query, Scorer, best_frame_time, scorer_for
from salova.runtime import Models, load_models, moved_model_error
from salova.store.store import IndexStore

ZERO_SHOT_NOTE = "no trained SALOVA checkpoint: zero-shot CLIP/SigLIP scoring, moments only (no answer)"
ZERO_SHOT_ANSWERER_NOTE = "no trained SALOVA checkpoint: moments by zero-shot CLIP/SigLIP scoring"


class Session:
    """Asks questions about videos in one index and searches it, loading models once (interactive or batch)."""

    def __init__(
        self,
        index_dir: Path,
        model: str | None = None,
        encoder: str | None = None,
        device: str = "auto",
        top_k: int = 5,
        answer: bool = True,
        max_new_tokens: int = 256,
        progress: bool = True,
        index_options: dict | None = None,
        answerer: Answerer | None = None,
        max_frames: int = 16,
        channels: str | Sequence[str] | None = None,
    ):
        if top_k < 1:
            raise option_problem("top_k", f"must be >= 1, got {top_k}")
        if max_new_tokens < 1:
            raise option_problem("max_new_tokens", f"must be >= 1, got {max_new_tokens}")
        self.index_dir = Path(index_dir).expanduser()
        if max_frames < 1:
            raise option_problem("max_frames", f"must be >= 1, got {max_frames}")
        self.top_k, self.want_answer, self.max_new_tokens = top_k, answer, max_new_tokens
        self.answerer, self.max_frames = answerer, max_frames  # the caller loads and closes the answerer
        self.progress = progress
        self.channels = parse_channels(channels)  # visual, speech (the speech channel when the index has speech)
        self.index_options = index_options or {}
        t0 = time.perf_counter()
        if model is None and encoder is None:
            model, encoder = self._index_model()
        load_llm = answer and model is not None and answerer is None  # an answerer replaces FocusFast's LLM
        self.models: Models = load_models(model, encoder, device, load_llm=load_llm)
        self.scorer: Scorer = scorer_for(self.models)
        self.load_s = time.perf_counter() - t0
        self._store: IndexStore | None = None  # one reader snapshot, reused across questions
        self._speech = None  # the speech channel, opened on first use (salova.speech.channel)

    # ------------------------------------------------------------------ lifecycle
    def _reader(self) -> IndexStore:
        if self._store is None:
            self._store = IndexStore.open(self.index_dir, fingerprint=self.models.fingerprint())
        return self._store

    def _speech_channel(self):
        """The speech channel when it is asked for and the index holds speech, else None."""
        if "speech" not in self.channels:
            return None
        if self._speech is None:
            self._speech = open_speech(self.index_dir, self.models.device.type) or False
        return self._speech or None

    def close(self) -> None:
        if self._speech:
            self._speech.invalidate()  # rows are re-read after an index change
        elif self._speech is False:
            self._speech = None  # look again: indexing may have added speech
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _index_model(self) -> tuple[str | None, str | None]:
        """Default to the model the index was built with (when it still exists)."""
        if not self.index_dir.exists():
            return None, None
        try:
            with IndexStore.open(self.index_dir) as store:
                fp = store.fingerprint
        except IndexStoreError:
            return None, None
        # Local model folders are recorded as absolute paths; anything else is a hub id (loaded from the cache)
        if fp.checkpoint:
            if Path(fp.checkpoint).is_absolute() and not Path(fp.checkpoint).exists():
                raise moved_model_error(self.index_dir, "checkpoint", fp.checkpoint, "model")
            return fp.checkpoint, None
        if Path(fp.encoder).is_absolute() and not Path(fp.encoder).exists():
            raise moved_model_error(self.index_dir, "encoder", fp.encoder, "encoder")
        return None, fp.encoder

    @property
    def model_name(self) -> str:
        return self.models.checkpoint or self.models.encoder.name

    @property
    def mode(self) -> str:
        modes = [self.scorer.mode] if "visual" in self.channels else []
        return "+".join(modes + (["speech"] if self._speech_channel() else []))

    def encode_query(self, text: str) -> Query:
        features = self.models.encoder.encode_text([text])
        return Query(text, features, features.joint[0].float().cpu().numpy())

    # ------------------------------------------------------------------ ask
    def ask(self, video: str | Path, question: str) -> AskResult:
        """The top-K moments of one video for a question (indexing it first if new or changed), and an answer
        from the session's answerer, or from the checkpoint's LLM when it has one."""
        question = (question or "").strip()
        if not question:
            raise UsageError("the question is empty")
        path = Path(video).expanduser()
        if not path.is_file():
            raise UsageError(f"{video}: no such video file")
        path = path.resolve()
        timings = {"load_s": round(self.load_s, 3)}
        t0 = time.perf_counter()
        self._ensure_indexed(path)
        timings["index_s"] = round(time.perf_counter() - t0, 3)

        t0 = time.perf_counter()
        store = self._reader()
        rec = store.get_video(str(path))
        if rec is None or rec.status != "indexed":
            reason = rec.error if rec is not None and rec.error else "it could not be indexed"
            raise UsageError(f"{path.name}: cannot answer, {reason}")
        segs = store.segments(rec.id)
        frames = store.load_frames(rec.id)
        query = self.encode_query(question)
        visual = self.scorer.score_videos(store, [rec.id], query).get(rec.id) if "visual" in self.channels else None
        speech = self._speech_channel()
        spoken = speech.segment_scores(rec.id, len(segs), question) if speech else None
        if visual is None and spoken is None:
            raise IndexStoreError(f"{path.name}: the index holds nothing to score for this video "
                                  f"({'+'.join(self.channels)}); re-index it")
        scores, channel = score_segments(visual, spoken)
        k = min(self.top_k, len(segs))
        best = np.argsort(-scores, kind="stable")[:k]
        moments = []
        for rank, i in enumerate(best, start=1):
            times, fj = frames[i]
            at = best_frame_time(times, fj, query, segs[i].start_s)
            m = Moment(rank, int(i), segs[i].start_s, segs[i].end_s, at, float(scores[i]), channel[i])
            moments.append(speech_moment(m, speech, rec.id, question) if speech else m)
        moments.sort(key=lambda m: m.start_s)
        timings["retrieve_s"] = round(time.perf_counter() - t0, 3)

        result = AskResult(
            video=str(path), question=question, model=self.model_name, mode=self.mode, answer=None, note=None,
            moments=moments, scores=[float(s) for s in scores], segments=[(s.start_s, s.end_s) for s in segs],
            timings=timings,
        )
        if self.answerer is not None and self.want_answer:
            return self._answer_with(result, store, rec, [t for t, _ in frames])
        answer, note = None, self._no_answer_reason()
        latents = store.load_latents(rec.id) if note is None else None  # memory-mapped: only focus rows are read
        if note is None and latents is None:
            note = "the index holds no connector latents for this video: re-index it with the checkpoint"
        if note is None:
            t0 = time.perf_counter()
            answer = self.models.salova.answer(
                question, torch.from_numpy(np.array(store.load_routing(rec.id), np.float32)), latents,
                torch.from_numpy(scores), max_new_tokens=self.max_new_tokens, top_k=self.top_k,
            )
            timings["answer_s"] = round(time.perf_counter() - t0, 3)
            result.answerer = "focusfast"
            result.answer_moments = [{"rank": m.rank, "segment": m.segment, "start_s": m.start_s, "end_s": m.end_s,
                                      "at_s": m.at_s, "frame_times": [], "transcript": [
                                          line.__dict__ for line in transcript_for(speech, rec.id, m.start_s, m.end_s)
                                      ]} for m in moments]
        result.answer, result.note = answer, note
        return result

    def _answer_with(self, result: AskResult, store: IndexStore, rec, segment_times: list) -> AskResult:
        """The session's answerer reads the top-K moments: frames at their stored times, transcript lines."""
        from tqdm.auto import tqdm

        with tqdm(total=2, desc=f"answering ({self.answerer.kind})", unit="step", disable=not self.progress,
                  leave=False) as bar:
            t0 = time.perf_counter()
            lines = self._speech_channel() or store  # the speech channel holds the transcript
            transcripts = {m.rank: transcript_for(lines, rec.id, m.start_s, m.end_s) for m in result.moments}
            request = build_request(
                Path(result.video), result.question, result.moments, segment_times, max_frames=self.max_frames,
                with_frames=self.answerer.reads_frames, transcripts=transcripts, duration_s=rec.duration_s,
            )
            result.timings["frames_s"] = round(time.perf_counter() - t0, 3)
            bar.update()
            t0 = time.perf_counter()
            result.answer = cite(self.answerer.answer(request, max_new_tokens=self.max_new_tokens), request)
            result.timings["answer_s"] = round(time.perf_counter() - t0, 3)
            bar.update()
        result.answerer = self.answerer.label
        result.answer_moments = [m.to_dict() for m in request.moments]
        result.note = None if self.models.trained else ZERO_SHOT_ANSWERER_NOTE
        return result

    def _no_answer_reason(self) -> str | None:
        if not self.models.trained:
            return ZERO_SHOT_NOTE
        if not self.want_answer:
            return "answer not requested"
        if self.models.salova.llm is None:
            return "the checkpoint has no LLM: moments only"
        return None

    def _ensure_indexed(self, path: Path) -> None:
        """Index the video first when it is new or changed (with progress)."""
        if self.index_dir.exists():
            try:
                if is_unchanged(self._reader().get_video(str(path)), path, path.stat()):
                    return
            except IndexStoreError as exc:
                if "no index" not in str(exc):
                    raise
        self.close()  # the snapshot is stale once this video is (re)indexed
        opts = IndexOptions(index_dir=self.index_dir, progress=self.progress, shard_from_env=False,
                            **self.index_options)
        summary = run_index([path], opts, models=self.models)
        if summary.failed:
            raise UsageError(summary.failures[0]["error"])

    # ------------------------------------------------------------------ search
    def search(self, query: str, limit: int = 10, exhaustive: bool = False) -> list[SearchHit]:
        """The ``limit`` best moments across the library.

        FAISS finds candidate segments by joint-space similarity. Without a checkpoint they are the answer;
        with one, the router re-scores every segment of the ``limit`` best candidate videos (a segment is
        scored in the context of its whole video) and the best of those are returned. ``exhaustive`` scans
        every segment even where a large library's index is approximate.
        """
        query = (query or "").strip()
        if not query:
            raise UsageError("the search query is empty")
        if limit < 1:
            raise option_problem("limit", f"must be >= 1, got {limit}")
        q = self.encode_query(query)
        store = self._reader()
        hits = []
        if "visual" in self.channels:
            # [(video_id, segment, score)]
            candidates = store.search_joint(q.joint, k=max(4 * limit, 32), exhaustive=exhaustive)
            if self.models.trained:
                vids = list(dict.fromkeys(v for v, _, _ in candidates))[:limit]
                scored = self.scorer.score_videos(store, vids, q)
                hits = [(v, i, float(s)) for v, scores in scored.items() for i, s in enumerate(scores)]
            else:
                hits = candidates
            hits = sorted(hits, key=lambda h: -h[2])[: max(4 * limit, 32)]
        speech = self._speech_channel()
        fused = fuse_hits(hits, speech.search(query, max(4 * limit, 32)) if speech else [])[:limit]
        paths = {v.id: v.path for v in store.videos()}
        out = []
        for vid, idx, score, channel in fused:
            seg = store.segments(vid)[idx]
            hit = SearchHit(paths.get(vid, "?"), int(idx), seg.start_s, seg.end_s, float(score), channel)
            if speech:
                hit.transcript = " ".join(t for _, _, t in speech.transcript(vid, seg.start_s, seg.end_s)) or None
            out.append(hit)
        return out
