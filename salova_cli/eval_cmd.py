"""`salova eval niah | grounding | mcq`: benchmarks on the retrieval and answer path that `ask` uses."""

from __future__ import annotations

from pathlib import Path

import typer

from salova.errors import UsageError
from salova_cli.common import DEVICE_HELP, INDEX_HELP, index_dir, print_json, show_progress

app = typer.Typer(help="Benchmarks: V-NIAH grids, temporal grounding, multiple choice (zero-shot or a checkpoint).",
                  no_args_is_help=True)

MODEL_HELP = "SALOVA checkpoint (router retrieval; answers if it has an LLM). None: zero-shot."
ENCODER_HELP = "CLIP/SigLIP encoder for zero-shot retrieval."
PRED_HELP = "Write one JSON line per item here (needed by --resume)."


def _floats(value: str | None, flag: str, kind=float) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(kind(x) for x in value.replace(" ", "").split(",") if x)
    except ValueError:
        raise UsageError(f"{flag} {value!r}: expected comma-separated numbers, e.g. 0,0.5,1") from None


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {value!r}: expected WxH, e.g. 224x224") from None
    return w, h


@app.command("niah")
def niah(
    output: Path = typer.Option(Path("salova-niah"), "--output", "-o", help="Run folder: settings, per-cell "
                                "results (cells.jsonl), results.json, heatmap, its own index."),
    preset: str = typer.Option("longva", "--preset", help="Grid: longva (300-3000 frames x depths 0-1 by 0.2), "
                               "small (60-300 x 0-1 by 0.25) or tiny (20,40 x 0,0.5,1)."),
    lengths: str | None = typer.Option(None, "--lengths", help="Haystack lengths in 1-FPS frames, e.g. 60,120."),
    depths: str | None = typer.Option(None, "--depths", help="Needle depths in [0, 1], e.g. 0,0.5,1."),
    haystack: list[Path] = typer.Option(None, "--haystack", help="Haystack video(s) (repeatable; default: a "
                                        "synthetic one from --seed)."),
    needle_image: str | None = typer.Option(None, "--needle-image", help="Needle image (needs --question)."),
    needle_clip: str | None = typer.Option(None, "--needle-clip", help="Needle clip (needs --question)."),
    needle_seconds: int = typer.Option(1, "--needle-seconds", help="How long an image needle is shown."),
    question: str | None = typer.Option(None, "--question", help="Question about the needle."),
    answer: str | None = typer.Option(None, "--answer", help="Expected answer (exact match, with an LLM)."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help=ENCODER_HELP),
    top_k: int = typer.Option(5, "--top-k", "-k", help="K of hit@K."),
    size: str = typer.Option("224x224", "--size", help="Cell video size WxH."),
    seed: int = typer.Option(0, "--seed", help="Synthetic haystack and needle seed."),
    max_segment: float = typer.Option(60.0, "--max-segment", help="Split scenes longer than this (seconds)."),
    no_answer: bool = typer.Option(False, "--no-answer", help="Retrieval only; do not run the LLM."),
    resume: bool = typer.Option(False, "--resume", help="Keep the finished cells of an earlier run in --output."),
    keep_videos: bool = typer.Option(False, "--keep-videos", help="Keep each cell's video."),
    plot: Path | None = typer.Option(None, "--plot", help="Heatmap PNG (default: OUTPUT/heatmap.png)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> int:
    """Visual needle in a haystack (LongVA's V-NIAH, any haystack): hit@1 / hit@K per length x depth."""
    from salova.eval import niah as bench

    opts = bench.NiahOptions(
        output=output, preset=preset, lengths=_floats(lengths, "--lengths", int), depths=_floats(depths, "--depths"),
        haystack=tuple(str(p) for p in haystack or ()), needle_image=needle_image, needle_clip=needle_clip,
        needle_seconds=needle_seconds, question=question, answer=answer, model=model, encoder=encoder,
        device=device, top_k=top_k, size=_size(size), seed=seed, max_segment_s=max_segment,
        generate=not no_answer, resume=resume, keep_videos=keep_videos, plot=plot,
        progress=show_progress(quiet, as_json),
    )
    summary = bench.run_niah(opts)
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "cells"})
    elif not quiet:
        typer.echo(bench.table(summary))
        typer.echo(f"heatmap {summary['plot']}; per-cell results {output / 'cells.jsonl'}")
    return 0


def _session(index, model, encoder, device, top_k=5, no_answer=True, max_new_tokens=32):
    from salova.retrieval import Session

    return Session(index_dir(index), model=model, encoder=encoder, device=device, top_k=top_k,
                   answer=not no_answer, max_new_tokens=max_new_tokens, progress=False)


@app.command("grounding")
def grounding(
    annotations: Path = typer.Option(..., "--annotations", help="Charades-STA (.txt) or QVHighlights (.jsonl)."),
    videos: Path = typer.Option(..., "--videos", help="Folder with the videos (found by id, recursively)."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help=ENCODER_HELP),
    fmt: str = typer.Option("auto", "--format", help="auto, charades or qvhighlights."),
    predictions: Path | None = typer.Option(None, "--predictions", help=PRED_HELP),
    resume: bool = typer.Option(False, "--resume", help="Skip the queries already in --predictions."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N queries."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> int:
    """Temporal grounding: R@1/R@5 at IoU 0.3/0.5/0.7, mIoU and hit@1 of the reported moments."""
    from salova.eval import grounding as bench

    task = bench.load_grounding(annotations, videos, fmt=fmt, limit=limit, predictions=predictions, resume=resume)
    with _session(index, model, encoder, device) as session:
        summary = bench.run_grounding(session, task, predictions=predictions, resume=resume,
                                      progress=show_progress(quiet, as_json))
    if as_json:
        print_json(summary)
    elif not quiet:
        typer.echo(bench.table(summary))
    return 0


@app.command("mcq")
def mcq(
    annotations: Path = typer.Option(..., "--annotations", help="Video-MME (.parquet/.json), LongVideoBench "
                                     "(lvb_*.json) or MLVU (json file or folder) as released."),
    videos: Path = typer.Option(..., "--videos", help="Folder with the videos (found by id, recursively)."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    encoder: str | None = typer.Option(None, "--encoder", help=ENCODER_HELP),
    fmt: str = typer.Option("auto", "--format", help="auto, videomme, longvideobench or mlvu."),
    predictions: Path | None = typer.Option(None, "--predictions", help=PRED_HELP),
    resume: bool = typer.Option(False, "--resume", help="Skip the questions already in --predictions."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N questions."),
    top_k: int = typer.Option(5, "--top-k", "-k", help="Moments used (FocusFast / the retrieval rule)."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="LLM reply length limit."),
    no_answer: bool = typer.Option(False, "--no-answer", help="Use the retrieval rule even with an LLM."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> int:
    """Multiple choice: accuracy overall, by duration and by category (LLM letter, or the retrieval rule)."""
    from salova.eval import mcq as bench

    task = bench.load_mcq(annotations, videos, fmt=fmt, limit=limit, predictions=predictions, resume=resume)
    with _session(index, model, encoder, device, top_k, no_answer, max_new_tokens) as session:
        summary = bench.run_mcq(session, task, predictions=predictions, resume=resume,
                                progress=show_progress(quiet, as_json))
    if as_json:
        print_json(summary)
    elif not quiet:
        typer.echo(bench.table(summary))
    return 0
