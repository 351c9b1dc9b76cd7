"""`salova ask` and `salova search`: retrieval over the index, moments with timestamps, FocusFast answers.

Retrieval never decodes or re-encodes a video that is already indexed: the router (trained checkpoint)
reads the stored routing tokens; zero-shot scoring reads the stored joint-space segment embeddings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from salova.errors import IndexStoreError, SalovaError, UsageError
from salova.index.indexer import IndexOptions, is_unchanged, run_index
from salova.models.zero_shot import zero_shot_scores
from salova.runtime import Models, load_models
from salova.store.layout import DB_FILE
from salova.store.store import IndexStore

logger = logging.getLogger(__name__)

ZERO_SHOT_NOTE = "no trained SALOVA checkpoint: zero-shot CLIP/SigLIP scoring, moments only (no answer)"


@dataclass
class Moment:
    rank: int  # 1 = best score
    segment: int  # segment index in the video
    start_s: float
    end_s: float
    at_s: float  # the best-matching 1-FPS frame inside the segment
    score: float


@dataclass
class AskResult:
    video: str
    question: str
    model: str
    mode: str  # "router" or "zero-shot"
    answer: str | None
    note: str | None  # why there is no answer, or other caveats
    moments: list[Moment]
    scores: list[float] = field(default_factory=list)  # every segment's score (for plots)
    segments: list[tuple[float, float]] = field(default_factory=list)  # every segment's (start_s, end_s)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("scores")
        d.pop("segments")
        return d


@dataclass
class SearchHit:
    video: str
    segment: int
    start_s: float
    end_s: float
    score: float


def hms(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Asker:
    """Answers questions about videos in one index, loading models once (interactive or batch use)."""

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
    ):
        if top_k < 1:
            raise UsageError(f"--top-k must be >= 1, got {top_k}")
        if max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
        self.index_dir = Path(index_dir).expanduser()
        self.top_k, self.want_answer, self.max_new_tokens = top_k, answer, max_new_tokens
        self.progress = progress
        self.index_options = index_options or {}
        t0 = time.perf_counter()
        if model is None and encoder is None:
            model, encoder = self._index_model()
        self.models: Models = load_models(model, encoder, device, load_llm=answer and model is not None)
        self.load_s = time.perf_counter() - t0
        self._store: IndexStore | None = None  # one reader snapshot, reused across questions

    def _reader(self) -> IndexStore:
        if self._store is None:
            self._store = IndexStore.open(self.index_dir, fingerprint=self.models.fingerprint())
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Asker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _index_model(self) -> tuple[str | None, str | None]:
        """Default to the model the index was built with (when it still exists)."""
        if not (self.index_dir / DB_FILE).exists() and not self.index_dir.exists():
            return None, None
        try:
            with IndexStore.open(self.index_dir) as store:
                fp = store.fingerprint
        except IndexStoreError:
            return None, None
        if fp.checkpoint and Path(fp.checkpoint).exists():
            return fp.checkpoint, None
        return None, fp.encoder

    @property
    def model_name(self) -> str:
        return self.models.checkpoint or self.models.encoder.name

    # ------------------------------------------------------------------ ask
    def ask(self, video: str | Path, question: str) -> AskResult:
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
        joint = store.load_joint(rec.id)
        frames = store.load_frames(rec.id)
        routing = store.load_routing(rec.id) if self.models.trained else None
        latents = None
        if self.models.trained and self.want_answer and self.models.salova.llm is not None:
            latents = store.load_latents(rec.id)  # memory-mapped; answer() reads only the focus rows
        text = self.models.encoder.encode_text([question])
        text_joint = text.joint[0].float().cpu().numpy()
        if self.models.trained and routing is not None:
            mode = "router"
            with torch.inference_mode():
                scores = self.models.salova.score(torch.from_numpy(np.array(routing, np.float32)), text)
            scores = scores.float().cpu().numpy()
        else:
            mode = "zero-shot"
            scores = zero_shot_scores(joint, text_joint)
        k = min(self.top_k, len(segs))
        best = np.argsort(-scores, kind="stable")[:k]
        moments = []
        for rank, i in enumerate(best, start=1):
            times, fj = frames[i]
            at = segs[i].start_s
            if len(times):
                at = float(times[int(np.argmax(np.asarray(fj, np.float32) @ text_joint))])
            moments.append(Moment(rank, int(i), segs[i].start_s, segs[i].end_s, at, float(scores[i])))
        moments.sort(key=lambda m: m.start_s)
        timings["retrieve_s"] = round(time.perf_counter() - t0, 3)

        answer, note = None, None
        if not self.models.trained:
            note = ZERO_SHOT_NOTE
        elif not self.want_answer:
            note = "answer not requested (--no-answer)"
        elif self.models.salova.llm is None:
            note = "the checkpoint has no LLM: moments only"
        elif latents is None:
            note = "the index holds no connector latents for this video: re-index with --model"
        else:
            t0 = time.perf_counter()
            answer = self.models.salova.answer(
                question, torch.from_numpy(np.array(routing, np.float32)), latents,
                torch.from_numpy(scores), max_new_tokens=self.max_new_tokens, top_k=self.top_k,
            )
            timings["answer_s"] = round(time.perf_counter() - t0, 3)
        return AskResult(
            video=str(path), question=question, model=self.model_name, mode=mode, answer=answer, note=note,
            moments=moments, scores=[float(s) for s in scores], segments=[(s.start_s, s.end_s) for s in segs],
            timings=timings,
        )

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

    # ------------------------------------------------------------------ batch
    def ask_many(self, jobs: Iterator[tuple[int, dict | str]]) -> Iterator[dict]:
        """(line number, parsed object or error text) -> result or error objects, one per line."""
        for line_no, job in jobs:
            if isinstance(job, str):
                yield {"line": line_no, "error": job}
                continue
            try:
                video, question = job.get("video"), job.get("question")
                if not isinstance(video, str) or not isinstance(question, str):
                    raise UsageError("each line needs string fields 'video' and 'question'")
                result = self.ask(video, question).to_dict()
                result["line"] = line_no
                yield result
            except Exception as exc:  # one bad line (or one failing video) must not end the batch
                if not isinstance(exc, SalovaError):
                    logger.debug("line %d failed", line_no, exc_info=True)
                message = str(exc) if isinstance(exc, SalovaError) else f"{type(exc).__name__}: {exc}"
                yield {"line": line_no, "video": job.get("video"), "question": job.get("question"),
                       "error": " ".join(message.split())}

    # ------------------------------------------------------------------ search
    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        query = (query or "").strip()
        if not query:
            raise UsageError("the search query is empty")
        if limit < 1:
            raise UsageError(f"--limit must be >= 1, got {limit}")
        text = self.models.encoder.encode_text([query])
        text_joint = text.joint[0].float().cpu().numpy()
        store = self._reader()
        candidates = store.search_joint(text_joint, k=max(4 * limit, 32))
        if not self.models.trained:
            hits = candidates
        else:  # the router scores a segment in the context of its whole video: one padded batch
            # Re-rank the `limit` best candidate videos (by their best zero-shot segment): the router's cost
            # then does not grow with the library, only FAISS's does.
            vids = list(dict.fromkeys(v for v, _, _ in candidates))[:limit]
            routing = [store.load_routing(v) for v in vids]
            vids = [v for v, r in zip(vids, routing, strict=True) if r is not None]
            routing = [np.asarray(r, np.float32) for r in routing if r is not None]
            hits = []
            if vids:
                n = max(len(r) for r in routing)
                batch = np.zeros((len(vids), n, routing[0].shape[1]), np.float32)
                mask = np.zeros((len(vids), n), bool)
                for b, r in enumerate(routing):
                    batch[b, : len(r)], mask[b, : len(r)] = r, True
                router = self.models.salova.router
                dev = router.logit_scale.device
                with torch.inference_mode():
                    tokens = text.tokens.to(dev).expand(len(vids), -1, -1)
                    tmask = text.mask.to(dev).expand(len(vids), -1)
                    query = text.sentence.to(dev).expand(len(vids), -1) if text.sentence is not None else None
                    scores = router(torch.from_numpy(batch).to(dev), tokens, tmask, torch.from_numpy(mask).to(dev),
                                    text_query=query)
                row = {v: b for b, v in enumerate(vids)}
                hits = [(v, i, float(scores[row[v], i])) for v, i, _ in candidates if v in row]
        hits = sorted(hits, key=lambda h: -h[2])[:limit]
        paths = {v.id: v.path for v in store.videos()}
        out = []
        for vid, idx, score in hits:
            seg = store.segments(vid)[idx]
            out.append(SearchHit(paths.get(vid, "?"), int(idx), seg.start_s, seg.end_s, float(score)))
        return out


def read_questions(file: Path, video: str | None = None) -> Iterator[tuple[int, dict | str]]:
    """JSONL lines {"video", "question"} -> (line number, object or error). With ``video``, lines may be
    plain questions (or {"question"} objects) about that one video."""
    try:
        handle = open(file, encoding="utf-8", errors="replace")  # noqa: SIM115 (a generator keeps it open while reading)
    except OSError as exc:
        raise UsageError(f"{file}: cannot read questions ({exc.strerror})") from None
    with handle:
        for n, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if video is not None:
                    yield n, {"video": video, "question": line}
                else:
                    yield n, f"line {n}: not JSON ({exc.msg})"
                continue
            if video is not None and not isinstance(obj, dict):
                obj = {"question": obj if isinstance(obj, str) else line}
            if not isinstance(obj, dict):
                yield n, f"line {n}: expected a JSON object"
                continue
            if video is not None:
                obj.setdefault("video", video)
            yield n, obj


def plot_relevance(result: AskResult, out: Path) -> Path:
    """Timeline of every segment's score, top-K highlighted, HH:MM:SS axis; written to ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    top = {m.segment for m in result.moments}
    fig, ax = plt.subplots(figsize=(10, 3), dpi=120)
    scores = np.asarray(result.scores, dtype=np.float32)
    base = float(min(0.0, scores.min())) if len(scores) else 0.0
    for i, ((s, e), score) in enumerate(zip(result.segments, scores, strict=True)):
        color = "tab:orange" if i in top else "tab:blue"
        ax.bar(s, score - base, width=max(e - s, 1e-3), bottom=base, align="edge", color=color,
               edgecolor="white", linewidth=0.5)
    for m in result.moments:
        ax.axvline(m.at_s, color="tab:red", linewidth=0.8, linestyle=":")
        ax.annotate(f"#{m.rank}", (m.at_s, float(scores[m.segment])), fontsize=7, ha="center", va="bottom")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: hms(x)))
    ax.set_xlabel("time")
    ax.set_ylabel(f"score ({result.mode})")
    ax.set_title(f"{Path(result.video).name}: {result.question}"[:100], fontsize=9)
    if result.segments:
        ax.set_xlim(0, result.segments[-1][1])
    fig.tight_layout()
    try:
        fig.savefig(out, format="png")
    except OSError as exc:
        raise UsageError(f"--plot {out}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
    return out


__all__ = ["Asker", "AskResult", "Moment", "SearchHit", "hms", "plot_relevance", "read_questions"]
