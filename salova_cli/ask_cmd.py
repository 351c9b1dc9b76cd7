"""`salova ask VIDEO QUESTION` and `salova search QUERY`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from salova.errors import UsageError
from salova_cli.common import CHANNELS_HELP, DEVICE_HELP, INDEX_HELP, index_dir, print_json, show_progress

MODEL_HELP = "SALOVA checkpoint (default: the one the index was built with; none: zero-shot)."


def ask(
    video: str | None = typer.Argument(None, help="Video file (indexed first if new or changed)."),
    question: str | None = typer.Argument(None, help="The question."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help="CLIP/SigLIP encoder for zero-shot use."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Moments to report (paper: 5)."),
    answerer: str | None = typer.Option(None, "--answerer", help="Who answers from the moments: a Hugging Face "
                                        "vision-language or text model (dir or hub id), a .gguf file, or an "
                                        "OpenAI-compatible server URL (http://host:port/v1). Default: FocusFast "
                                        "with a trained checkpoint, else no answer."),
    answerer_model: str | None = typer.Option(None, "--answerer-model", help="Model name on the --answerer "
                                              "server (default: the first it lists)."),
    max_frames: int = typer.Option(16, "--max-frames", help="Frames the answerer sees, over all moments."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (JSONL in batch mode)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG timeline of segment scores."),
    html: Path | None = typer.Option(None, "--html", help="Write a self-contained HTML report (one question "
                                     "or the whole batch)."),
    export: Path | None = typer.Option(None, "--export", help="Cut each moment out as an .mp4 into this folder."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Answer length limit."),
    no_answer: bool = typer.Option(False, "--no-answer", help="Moments only; do not run the LLM."),
    questions: Path | None = typer.Option(None, "--questions", help="Batch: JSONL of {video, question} "
                                          "(or, with VIDEO, one question per line). Writes JSONL."),
    channels: str | None = typer.Option(None, "--channels", help=CHANNELS_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> int:
    """Find the moments of a video that answer a question, and answer it (--answerer, or a trained checkpoint)."""
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
    if answerer_model is not None and answerer is None:
        raise UsageError("--answerer-model needs --answerer URL")
    if answerer is not None and no_answer:
        raise UsageError("give either --answerer or --no-answer, not both")
    progress = show_progress(quiet, as_json)
    from salova.retrieval import Session  # heavy (torch): not at start-up

    loaded = _load_answerer(answerer, answerer_model, device, progress) if answerer is not None else None
    try:
        session = Session(index_dir(index), model=model, encoder=encoder, device=device, top_k=top_k,
                          answer=not no_answer, max_new_tokens=max_new_tokens, progress=progress,
                          answerer=loaded, max_frames=max_frames, channels=channels)
        with session:
            return _ask(session, video, question, questions, plot, html, export, as_json)
    finally:
        if loaded is not None:
            loaded.close()


def _load_answerer(spec: str, model: str | None, device: str, verbose: bool):
    """Load the answerer once (for one question or a whole batch), saying so: big models take a while."""
    import time

    from salova.answerers import load_answerer

    if verbose:
        typer.echo(f"salova: loading answerer {spec} ...", err=True)
    t0 = time.perf_counter()
    loaded = load_answerer(spec, model=model, device=device)
    if verbose:
        typer.echo(f"salova: answerer {loaded.label} ready ({time.perf_counter() - t0:.1f} s)", err=True)
    return loaded


def _ask(session, video, question, questions, plot, html, export, as_json) -> int:
    from salova.retrieval import ask_many, hms, plot_relevance, read_questions
    from salova.retrieval.channels import quote
    from salova.retrieval.report import export_moments, write_report

    if questions is not None:
        failed, results, errors = 0, [], []
        for result in ask_many(session, read_questions(questions, video), on_result=results.append):
            failed += "error" in result
            if "error" in result:
                errors.append(result)
            elif export is not None:
                result["clips"] = export_moments(results[-1], export)
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        if html is not None:
            write_report(results, html, errors)
        return 1 if failed else 0
    result = session.ask(video, question)
    if plot is not None:
        plot_relevance(result, plot)
    if html is not None:
        write_report([result], html)
    clips = export_moments(result, export) if export is not None else None
    if as_json:
        print_json({**result.to_dict(), **({"clips": clips} if clips is not None else {})})
        return 0
    if result.note:
        typer.echo(f"note: {result.note}", err=True)
    typer.echo(f"{Path(result.video).name}: {result.question}")
    for m in result.moments:
        said = f'  "{quote(m.transcript)}"' if m.transcript else ""
        typer.echo(f"  #{m.rank}  {hms(m.start_s)}-{hms(m.end_s)}  at {hms(m.at_s)}  score {m.score:.3f}"
                   f"{'  [speech]' if m.channel == 'speech' else ''}{said}")
    if result.answer is not None:
        typer.echo(f"\n{result.answer}")
        typer.echo(f"(answered by {result.answerer})", err=True)
    for c in clips or []:
        typer.echo(f"wrote {c['path']} ({'stream copy' if c['mode'] == 'copy' else 're-encoded'})", err=True)
    if html is not None:
        typer.echo(f"wrote {html}", err=True)
    return 0


def search(
    query: str = typer.Argument(..., help="What to look for, in words."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help="CLIP/SigLIP encoder for zero-shot use."),
    limit: int = typer.Option(10, "--limit", "-n", help="Moments to print."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Scan every segment (a library over 200,000 "
                                    "segments is otherwise searched approximately)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    channels: str | None = typer.Option(None, "--channels", help=CHANNELS_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> int:
    """Search every indexed video for the moments that match a description."""
    from salova.retrieval import Session, hms
    from salova.retrieval.channels import quote
    from salova.store.layout import DB_FILE

    root = index_dir(index)
    if not (root / DB_FILE).is_file():
        raise UsageError(f"no index at {root}; run `salova index PATH` first")
    with Session(root, model=model, encoder=encoder, device=device, answer=False, progress=False,
                 channels=channels) as session:
        hits = session.search(query, limit, exhaustive=exhaustive)
    if as_json:
        print_json({"query": query, "model": session.model_name, "mode": session.mode,
                    "hits": [h.__dict__ for h in hits]})
        return 0
    width = max((len(Path(h.video).name) for h in hits), default=0)
    for h in hits:
        said = f'  [speech] "{quote(h.transcript)}"' if h.channel == "speech" and h.transcript else ""
        typer.echo(f"{Path(h.video).name:<{width}}  {hms(h.start_s)}-{hms(h.end_s)}  {h.score:.3f}{said}")
    if not hits:
        typer.echo("no matches", err=True)
    return 0
