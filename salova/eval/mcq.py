"""Multiple choice over long videos: Video-MME, LongVideoBench and MLVU files as released, and a video folder.

With a checkpoint that has an LLM, the question and its lettered options go through ``Session.ask`` (the same
string ranks the segments and prompts FocusFast) and the letter is extracted from the reply
(``metrics.extract_choice``; a reply that names no option is wrong). Without an LLM (zero-shot, or a checkpoint
without one) the rule is retrieval only:

1. rank the video's segments for the question and keep the top-K (the moments ``salova ask`` would report);
2. score each option with the same scorer, as the text ``"{option}. {question}"`` (option first, so a short text
   encoder's truncation cuts the question, not the option);
3. an option's score is its best score over those top-K segments; the highest-scoring option is the prediction.

Accuracy is reported overall, by duration group and by category.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from salova.errors import SalovaError, option_problem
from salova.eval.library import check_run_options, index_videos, locate_videos
from salova.eval.metrics import LETTERS, accuracy_by, extract_choice, option_text
from salova.eval.records import ResultLog, format_table
from salova.retrieval.session import Session

FORMATS = ("auto", "videomme", "longvideobench", "mlvu")
PROMPT_TAIL = "Answer with the option's letter from the given choices directly."


@dataclass
class McqItem:
    qid: str
    video: str  # id or relative path, looked up in the video folder
    question: str
    options: list[str]  # option texts, without their letters
    answer: str  # the correct letter
    duration: str  # duration group ("short", "medium", "long", LongVideoBench's "600", ...)
    category: str  # task type / question category


def duration_group(seconds: float) -> str:
    """Numeric durations (MLVU) in Video-MME's groups: short < 4 min <= medium <= 15 min < long."""
    return "short" if seconds < 240 else "medium" if seconds <= 900 else "long"


def read_mcq(path: str | Path, fmt: str = "auto") -> tuple[str, list[McqItem]]:
    """Parse a benchmark file (JSON list, JSONL, parquet) or a folder of them (MLVU's json/ folder)."""
    path = Path(path).expanduser()
    if fmt not in FORMATS:
        raise option_problem("format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
    files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl", ".parquet")) if path.is_dir() \
        else [path]
    if not files or not files[0].exists():
        raise option_problem("annotations", f"{path}: no such file (or no .json/.jsonl/.parquet in the folder)")
    records = [r for f in files for r in _load_records(f)]
    if not records:
        raise option_problem("annotations", f"{path}: no questions")
    if fmt == "auto":
        fmt = _detect(records[0])
    parse = {"videomme": _videomme, "longvideobench": _longvideobench, "mlvu": _mlvu}[fmt]
    items = []
    for n, rec in enumerate(records):
        try:
            items.extend(parse(rec, n))
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise option_problem("annotations", f"{path.name} record {n + 1}: not {fmt} ({exc!r})") from None
    return fmt, items


def _load_records(path: Path) -> list[dict]:
    try:
        if path.suffix == ".parquet":
            import duckdb

            con = duckdb.connect()
            try:
                cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            finally:
                con.close()
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise option_problem("annotations", f"{path}: cannot read ({exc})") from None
    except Exception as exc:  # duckdb's own errors (not a parquet file, ...)
        raise option_problem("annotations", f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    return data if isinstance(data, list) else [data]


def _detect(rec: dict) -> str:
    if "correct_choice" in rec:
        return "longvideobench"
    if "candidates" in rec:
        return "mlvu"
    if "options" in rec or "questions" in rec:
        return "videomme"
    raise option_problem("format", f"cannot tell the format from the fields {sorted(rec)[:8]}; give --format")


def _videomme(rec: dict, n: int) -> list[McqItem]:
    # The parquet has one row per question; the original JSON nests them under "questions".
    rows = [{**rec, **q} for q in rec["questions"]] if "questions" in rec else [rec]
    out = []
    for r in rows:
        options = [option_text(o) for o in r["options"]]
        video = str(r.get("videoID") or r["video_id"])
        out.append(McqItem(str(r.get("question_id", f"{video}-{n}")), video, str(r["question"]).strip(), options,
                           _letter(str(r["answer"]).strip(), len(options)), str(r.get("duration", "")),
                           str(r.get("task_type") or r.get("sub_category") or "")))
    return out


def _longvideobench(rec: dict, n: int) -> list[McqItem]:
    options = [str(c) for c in rec["candidates"]]
    choice = int(rec["correct_choice"])
    if not 0 <= choice < len(options):
        raise ValueError(f"correct_choice {choice} with {len(options)} candidates")
    return [McqItem(str(rec.get("id", n)), str(rec.get("video_path") or rec["video_id"]),
                    str(rec["question"]).strip(), options, LETTERS[choice], str(rec.get("duration_group", "")),
                    str(rec.get("question_category", "")))]


def _mlvu(rec: dict, n: int) -> list[McqItem]:
    options = [str(c) for c in rec["candidates"]]
    answer = str(rec["answer"])
    if answer not in options:
        raise ValueError(f"answer {answer!r} is not one of the candidates")
    duration = rec.get("duration")
    return [McqItem(str(rec.get("question_id", f"{rec['video']}-{n}")), str(rec["video"]),
                    str(rec["question"]).strip(), options, LETTERS[options.index(answer)],
                    duration_group(float(duration)) if duration is not None else "", str(rec.get("question_type", "")))]


def _letter(answer: str, n_options: int) -> str:
    letter = answer[:1].upper()
    if letter not in LETTERS[:n_options]:
        raise ValueError(f"answer {answer!r} is not an option letter")
    return letter


def prompt(item: McqItem) -> str:
    lines = [item.question, *(f"{LETTERS[i]}. {o}" for i, o in enumerate(item.options)), PROMPT_TAIL]
    return "\n".join(lines)


def answer_zero_shot(session: Session, video: str | Path, question: str, options: list[str]) -> tuple[str, list[float]]:
    """The retrieval rule (module docstring): (letter, each option's score)."""
    top = [m.segment for m in session.ask(video, question).moments]
    scores = [float(np.max(np.asarray(session.ask(video, f"{o}. {question}").scores)[top])) for o in options]
    return LETTERS[int(np.argmax(scores))], scores


def answer_item(session: Session, video: Path, item: McqItem, generate: bool) -> dict:
    """One question: the prediction record."""
    if generate:
        result = session.ask(video, prompt(item))
        if result.answer is not None:
            letter = extract_choice(result.answer, item.options)
            return {"pred": letter, "reply": result.answer, "rule": "llm",
                    "moments": [[m.start_s, m.end_s] for m in result.moments]}
    letter, scores = answer_zero_shot(session, video, item.question, item.options)
    return {"pred": letter, "option_scores": scores, "rule": "retrieval"}


@dataclass
class McqTask:
    """Parsed questions and where their videos are: everything checked before any model is loaded."""

    format: str
    items: list[McqItem]
    paths: dict[str, Path | None]  # video id -> file (None: not in the folder)


def load_mcq(annotations: str | Path, videos: str | Path, *, fmt: str = "auto", limit: int | None = None,
             predictions: Path | None = None, resume: bool = False) -> McqTask:
    check_run_options(limit, resume, predictions, "predictions file")
    fmt, items = read_mcq(annotations, fmt)
    items = items[:limit] if limit else items
    return McqTask(fmt, items, locate_videos([it.video for it in items], videos, "the benchmark's videos"))


def run_mcq(session: Session, task: McqTask, *, predictions: Path | None = None, resume: bool = False,
            progress: bool = True) -> dict:
    """Answer every question of ``task``; returns the summary with accuracies."""
    t0 = time.perf_counter()
    fmt, items, paths = task.format, task.items, task.paths
    failed = index_videos(session, [p for p in paths.values() if p is not None], progress)
    generate = session.want_answer and session.models.trained and session.models.salova.llm is not None
    log = ResultLog(predictions, "qid", resume, field="predictions") if predictions is not None else None
    records, skipped = [], {"missing_video": 0, "not_indexed": 0}
    try:
        for it in tqdm(items, desc="questions", unit="question", disable=not progress):
            if log is not None and it.qid in log:
                records.append(log.done[it.qid])
                continue
            path = paths[it.video]
            if path is None or str(path) in failed:
                skipped["missing_video" if path is None else "not_indexed"] += 1
                continue
            rec = {"qid": it.qid, "video": it.video, "question": it.question, "options": it.options,
                   "answer": it.answer, "duration": it.duration, "category": it.category,
                   **answer_item(session, path, it, generate)}
            rec["correct"] = rec["pred"] == it.answer
            records.append(rec)
            if log is not None:
                log.add(rec)
    finally:
        if log is not None:
            log.close()
    if not records:
        raise SalovaError("no question could be evaluated (every video was missing or failed to index)")
    return {"task": "mcq", "format": fmt, "n": len(records),
            "metrics": {"accuracy": float(np.mean([r["correct"] for r in records])),
                        "unanswered": float(np.mean([r["pred"] is None for r in records]))},
            "by_duration": accuracy_by(records, "duration"), "by_category": accuracy_by(records, "category"),
            "rule": "llm" if generate else "retrieval", "skipped": skipped, "model": session.model_name,
            "mode": session.mode, "seconds": round(time.perf_counter() - t0, 2)}


def table(summary: dict) -> str:
    rows = [["overall", "", summary["n"], summary["metrics"]["accuracy"]]]
    for group in ("by_duration", "by_category"):
        rows += [[group[3:], name, v["n"], v["accuracy"]] for name, v in summary[group].items()]
    text = format_table(["group", "value", "n", "accuracy"], rows)
    return f"{text}\n{summary['format']}, {summary['rule']} rule ({summary['mode']}, {summary['model']})"
