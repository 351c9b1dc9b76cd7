"""Temporal grounding: for each (video, sentence) of an annotation file, do salova's top moments cover the truth?

Formats as released: Charades-STA (``vid start end##sentence`` lines) and QVHighlights (JSONL with ``qid``,
``query``, ``vid``, ``relevant_windows``). Predictions are the moments ``salova ask`` reports, ranked by score:
segment boundaries from the index, never generated text. Metrics (``metrics.py``): R@1 and R@5 at IoU 0.3 / 0.5 /
0.7, mIoU of the top moment, hit@1 (the top moment overlaps the truth at all). With several truth windows
(QVHighlights), a prediction counts with the window it overlaps most.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from salova.errors import SalovaError, option_problem
from salova.eval.library import check_run_options, index_videos, locate_videos
from salova.eval.metrics import RECALL_RANKS, grounding_metrics, grounding_query_metrics
from salova.eval.records import ResultLog, format_table
from salova.retrieval.session import Session

FORMATS = ("auto", "charades", "qvhighlights")


@dataclass
class GroundingQuery:
    qid: str
    video: str  # the annotation's video id
    query: str
    windows: list[tuple[float, float]]  # ground truth, seconds


def read_annotations(path: str | Path, fmt: str = "auto") -> tuple[str, list[GroundingQuery]]:
    """Parse a Charades-STA or QVHighlights file; returns (format, queries). Malformed lines are usage errors
    that name the line."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise option_problem("format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise option_problem("annotations", f"{path}: cannot read ({exc.strerror})") from None
    if fmt == "auto":
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        fmt = "qvhighlights" if first.startswith("{") else "charades"
    queries = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            queries.append(_qvh_line(line, n) if fmt == "qvhighlights" else _charades_line(line, n))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise option_problem("annotations", f"{path.name} line {n}: not {fmt} ({exc})") from None
    if not queries:
        raise option_problem("annotations", f"{path}: no queries")
    return fmt, queries


def _charades_line(line: str, n: int) -> GroundingQuery:
    head, sentence = line.split("##", 1)
    vid, start, end = head.split()
    return GroundingQuery(str(n), vid, sentence.strip(), [(float(start), float(end))])


def _qvh_line(line: str, n: int) -> GroundingQuery:
    rec = json.loads(line)
    windows = [(float(s), float(e)) for s, e in rec["relevant_windows"]]
    if not windows:
        raise ValueError("empty relevant_windows")
    return GroundingQuery(str(rec.get("qid", n)), str(rec["vid"]), str(rec["query"]).strip(), windows)


@dataclass
class GroundingTask:
    """Parsed annotations and where their videos are: everything checked before any model is loaded."""

    format: str
    queries: list[GroundingQuery]
    paths: dict[str, Path | None]  # video id -> file (None: not in the folder)


def load_grounding(annotations: str | Path, videos: str | Path, *, fmt: str = "auto", limit: int | None = None,
                   predictions: Path | None = None, resume: bool = False) -> GroundingTask:
    check_run_options(limit, resume, predictions, "per-query file")
    fmt, queries = read_annotations(annotations, fmt)
    queries = queries[:limit] if limit else queries
    return GroundingTask(fmt, queries, locate_videos([q.video for q in queries], videos, "the annotated videos"))


def run_grounding(session: Session, task: GroundingTask, *, predictions: Path | None = None, resume: bool = False,
                  progress: bool = True) -> dict:
    """Ground every query of ``task`` with the session's retrieval; returns the summary."""
    if session.top_k < max(RECALL_RANKS):
        raise option_problem("top_k", f"R@{max(RECALL_RANKS)} needs at least {max(RECALL_RANKS)} moments")
    t0 = time.perf_counter()
    paths = task.paths
    failed = index_videos(session, [p for p in paths.values() if p is not None], progress)
    log = ResultLog(predictions, "qid", resume, field="predictions") if predictions is not None else None
    per_query, skipped = [], {"missing_video": 0, "not_indexed": 0}
    try:
        for q in tqdm(task.queries, desc="queries", unit="query", disable=not progress):
            if log is not None and q.qid in log:
                per_query.append(log.done[q.qid])
                continue
            path = paths[q.video]
            if path is None or str(path) in failed:
                skipped["missing_video" if path is None else "not_indexed"] += 1
                continue
            per_query.append(_ground(session, q, path))
            if log is not None:
                log.add(per_query[-1])
    finally:
        if log is not None:
            log.close()
    if not per_query:
        raise SalovaError("no query could be evaluated (every video was missing or failed to index)")
    return {"task": "grounding", "format": task.format, "n": len(per_query),
            "metrics": grounding_metrics(per_query), "skipped": skipped, "model": session.model_name,
            "mode": session.mode, "seconds": round(time.perf_counter() - t0, 2)}


def _ground(session: Session, q: GroundingQuery, path: Path) -> dict:
    result = session.ask(path, q.query)
    ranked = sorted(result.moments, key=lambda m: m.rank)
    windows = [(m.start_s, m.end_s) for m in ranked]
    return {"qid": q.qid, "video": q.video, "query": q.query, "truth": [list(w) for w in q.windows],
            "pred": [[m.start_s, m.end_s, m.score] for m in ranked], **grounding_query_metrics(windows, q.windows)}


def table(summary: dict) -> str:
    m = summary["metrics"]
    text = format_table(["metric", "value"], [[k, v] for k, v in m.items()])
    skipped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary["skipped"].items() if v)
    tail = f"; skipped {skipped}" if skipped else ""
    return f"{text}\n{summary['n']} queries ({summary['format']}, {summary['mode']}, {summary['model']}){tail}"
