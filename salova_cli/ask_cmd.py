"""`salova ask VIDEO QUESTION` and `salova search QUERY`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from salova.errors import UsageError
from salova.retrieval import Session, ask_many, hms, plot_relevance, read_questions
from salova_cli.common import DEVICE_HELP, INDEX_HELP, index_dir, print_json, show_progress

MODEL_HELP = "SALOVA checkpoint (default: the one the index was built with; none: zero-shot)."


def ask(
    video: str | None = typer.Argument(None, help="Video file (indexed first if new or changed)."),
    question: str | None = typer.Argument(None, help="The question."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help="CLIP/SigLIP encoder for zero-shot use."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Moments to report (paper: 5)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (JSONL in batch mode)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG timeline of segment scores."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Answer length limit."),
    no_answer: bool = typer.Option(False, "--no-answer", help="Moments only; do not run the LLM."),
    questions: Path | None = typer.Option(None, "--questions", help="Batch: JSONL of {video, question} "
                                          "(or, with VIDEO, one question per line). Writes JSONL."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> int:
    """Find the moments of a video that answer a question; answer it with a trained checkpoint."""
    if questions is None and (video is None or question is None):
        raise UsageError("usage: salova ask VIDEO QUESTION (or --questions FILE.jsonl)")
    if questions is not None and question is not None:
        raise UsageError("give either QUESTION or --questions, not both")
    if questions is None and not question.strip():
        raise UsageError("the question is empty")
    if plot is not None and questions is not None:
        raise UsageError("--plot works with a single question, not --questions")
    if questions is not None and not questions.is_file():
        raise UsageError(f"--questions {questions}: no such file")
    session = Session(index_dir(index), model=model, encoder=encoder, device=device, top_k=top_k,
                  answer=not no_answer, max_new_tokens=max_new_tokens, progress=show_progress(quiet, as_json))
    with session:
        return _ask(session, video, question, questions, plot, as_json)


def _ask(session: Session, video, question, questions, plot, as_json) -> int:
    if questions is not None:
        failed = 0
        for result in ask_many(session, read_questions(questions, video)):
            failed += "error" in result
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        return 1 if failed else 0
    result = session.ask(video, question)
    if plot is not None:
        plot_relevance(result, plot)
    if as_json:
        print_json(result.to_dict())
        return 0
    if result.note:
        typer.echo(f"note: {result.note}", err=True)
    typer.echo(f"{Path(result.video).name}: {result.question}")
    for m in result.moments:
        typer.echo(f"  #{m.rank}  {hms(m.start_s)}-{hms(m.end_s)}  at {hms(m.at_s)}  score {m.score:.3f}")
    if result.answer is not None:
        typer.echo(f"\n{result.answer}")
    return 0


def search(
    query: str = typer.Argument(..., help="What to look for, in words."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help="CLIP/SigLIP encoder for zero-shot use."),
    limit: int = typer.Option(10, "--limit", "-n", help="Moments to print."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> int:
    """Search every indexed video for the moments that match a description."""
    root = index_dir(index)
    if not (root / "index.duckdb").is_file():
        raise UsageError(f"no index at {root}; run `salova index PATH` first")
    with Session(root, model=model, encoder=encoder, device=device, answer=False, progress=False) as session:
        hits = session.search(query, limit)
    if as_json:
        print_json({"query": query, "model": session.model_name, "mode": session.mode,
                    "hits": [h.__dict__ for h in hits]})
        return 0
    width = max((len(Path(h.video).name) for h in hits), default=0)
    for h in hits:
        typer.echo(f"{Path(h.video).name:<{width}}  {hms(h.start_s)}-{hms(h.end_s)}  {h.score:.3f}")
    if not hits:
        typer.echo("no matches", err=True)
    return 0
