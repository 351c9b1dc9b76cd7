"""V-NIAH, generalised: hide a needle (an image or a short clip) in a haystack video at a grid of lengths x depths
and check that retrieval finds it (and, with an LLM, that the answer is right).

LongVA's protocol uses a copyrighted film as the haystack; here the haystack is any video(s) or, by default, a
synthetic one generated from a seed, so anyone can reproduce a run. Each cell is written as a real video and goes
through the path users run (``Session.ask``: decode, scene detection, encoding, indexing, scoring). A cell is
hit@k when one of the k best-scored segments overlaps the needle's time window.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from salova.errors import UsageError, option_problem
from salova.eval.haystack import Needle, SyntheticHaystack, VideoHaystack, write_cell
from salova.eval.metrics import exact_match, hit_at_k
from salova.eval.records import ResultLog, check_settings, format_table, write_json
from salova.retrieval.render import save_png
from salova.retrieval.session import Session

# Grid presets: (lengths in 1-FPS frames, depths). "longva" is LongVA's V-NIAH grid; the others fit a CPU.
PRESETS: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "longva": (tuple(range(300, 3001, 300)), (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
    "small": ((60, 120, 180, 240, 300), (0.0, 0.25, 0.5, 0.75, 1.0)),
    "tiny": ((20, 40), (0.0, 0.5, 1.0)),
}


@dataclass
class NiahOptions:
    output: Path  # folder: settings, per-cell results (cells.jsonl), results.json, heatmap, index, cell videos
    preset: str = "longva"  # grid preset (PRESETS); lengths / depths override it
    lengths: tuple[int, ...] | None = None  # haystack lengths in 1-FPS frames (= seconds)
    depths: tuple[float, ...] | None = None  # needle positions, 0 = start, 1 = end
    haystack: tuple[str, ...] = ()  # haystack videos (their 1-FPS frames, repeated); none: synthetic
    needle_image: str | None = None  # an image shown for needle_seconds
    needle_clip: str | None = None  # a short clip (all its 1-FPS frames)
    needle_seconds: int = 1  # how long an image needle is shown (LongVA: one frame)
    question: str | None = None  # asked about the needle (default: the synthetic needle's)
    answer: str | None = None  # expected answer, for exact match when an LLM answers
    model: str | None = None  # SALOVA checkpoint (router retrieval; answers if it has an LLM)
    encoder: str | None = None  # CLIP/SigLIP for zero-shot retrieval
    device: str = "auto"
    top_k: int = 5  # hit@K
    size: tuple[int, int] = (224, 224)  # (W, H) of the cell videos
    seed: int = 0  # synthetic haystack and needle
    max_segment_s: float = 60.0  # indexing: longer scenes are split
    generate: bool = True  # let a checkpoint's LLM answer (exact match)
    max_new_tokens: int = 32
    resume: bool = False  # keep finished cells of an earlier run in the same output
    keep_videos: bool = False  # keep each cell's video after it is scored
    plot: Path | None = None  # heatmap PNG (default: output/heatmap.png)
    progress: bool = True
    grid: tuple[tuple[int, ...], tuple[float, ...]] = field(init=False)

    def __post_init__(self):
        problems = []
        if self.preset not in PRESETS:
            problems.append(("preset", f"{self.preset!r}: expected one of {', '.join(PRESETS)}"))
            lengths, depths = (), ()
        else:
            lengths, depths = PRESETS[self.preset]
        lengths = tuple(int(x) for x in (self.lengths or lengths))
        depths = tuple(float(x) for x in (self.depths or depths))
        if any(n < 2 for n in lengths):
            problems.append(("lengths", f"need at least 2 frames each, got {list(lengths)}"))
        if any(not 0.0 <= d <= 1.0 for d in depths):
            problems.append(("depths", f"must lie in [0, 1], got {list(depths)}"))
        if self.top_k < 1:
            problems.append(("top_k", f"must be >= 1, got {self.top_k}"))
        if min(self.size) < 16:
            problems.append(("size", f"must be at least 16x16, got {self.size[0]}x{self.size[1]}"))
        if problems:
            raise UsageError(problems=problems)
        self.grid = (tuple(sorted(set(lengths))), tuple(sorted(set(depths))))
        self.output = Path(self.output).expanduser()

    def settings(self) -> dict:
        """What makes two runs comparable (the grid may grow on --resume)."""
        skip = {"output", "preset", "lengths", "depths", "device", "resume", "keep_videos", "plot", "progress", "grid"}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k not in skip}


def cell_key(length: int, depth: float) -> str:
    return f"{length}@{depth:g}"


def run_niah(opts: NiahOptions) -> dict:
    """Run (or resume) the grid; returns the summary also written to ``output/results.json``."""
    out = opts.output
    lengths, depths = opts.grid
    needle = Needle.load(opts.size, image=opts.needle_image, clip=opts.needle_clip, seconds=opts.needle_seconds,
                         question=opts.question, answer=opts.answer, seed=opts.seed)
    short = [n for n in lengths if n <= len(needle.frames)]
    if short:
        raise option_problem("lengths", f"{short} leave no room around a {len(needle.frames)}-frame needle")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise option_problem("output", f"{out}: cannot create ({exc.strerror})") from None
    check_settings(out / "settings.json", opts.settings(), opts.resume)
    if opts.haystack:
        haystack = VideoHaystack(opts.haystack, opts.size, max(lengths), out / "haystack.npy")
    else:
        haystack = SyntheticHaystack(opts.size, opts.seed)
    t0 = time.perf_counter()
    session = Session(out / "index", model=opts.model, encoder=opts.encoder, device=opts.device, top_k=opts.top_k,
                      answer=opts.generate, max_new_tokens=opts.max_new_tokens, progress=False,
                      index_options={"max_segment_s": opts.max_segment_s})
    cells = [(n, d) for n in lengths for d in depths]
    with session, ResultLog(out / "cells.jsonl", "cell", opts.resume) as log:
        todo = [(n, d) for n, d in cells if cell_key(n, d) not in log]
        for n, d in tqdm(todo, desc="niah cells", unit="cell", disable=not opts.progress):
            log.add(_run_cell(session, haystack, needle, n, d, opts))
        records = [log.done[cell_key(n, d)] for n, d in cells]
    summary = summarize(records, lengths, depths, opts.top_k)
    summary.update(model=session.model_name, mode=session.mode, needle=needle.source, question=needle.question,
                   answer=needle.answer, haystack=list(opts.haystack) or f"synthetic (seed {opts.seed})",
                   seconds=round(time.perf_counter() - t0, 2), output=str(out))
    plot = opts.plot or out / "heatmap.png"
    plot_heatmap(summary, plot)
    summary["plot"] = str(plot)
    write_json(out / "results.json", summary)
    return summary


def _run_cell(session: Session, haystack, needle: Needle, length: int, depth: float, opts: NiahOptions) -> dict:
    t0 = time.perf_counter()
    video = opts.output / "videos" / f"niah_{length}_{depth:g}.mp4"
    start, end = write_cell(video, haystack, needle, length, depth)
    result = session.ask(video, needle.question)
    scores = np.asarray(result.scores, np.float32)
    order = [int(i) for i in np.argsort(-scores, kind="stable")]  # best first
    targets = [i for i, (s, e) in enumerate(result.segments) if min(e, end) - max(s, start) > 0]
    rank = next((r for r, i in enumerate(order, start=1) if i in targets), None)
    if not opts.keep_videos:
        video.unlink(missing_ok=True)
    k = opts.top_k
    return {
        "cell": cell_key(length, depth), "length": length, "depth": depth, "needle_s": [start, end],
        "segments": len(order), "needle_segments": targets, "rank": rank,
        "hit@1": hit_at_k(order, targets, 1), f"hit@{k}": hit_at_k(order, targets, k),
        "chance@1": len(targets) / max(len(order), 1),
        "top": [[result.segments[i][0], result.segments[i][1], float(scores[i])] for i in order[:k]],
        "answer": result.answer,
        "exact_match": None if result.answer is None else exact_match(result.answer, needle.answer),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def summarize(records: list[dict], lengths: tuple[int, ...], depths: tuple[float, ...], k: int) -> dict:
    """Means over cells, and the hit@1 grid [depth][length] for the heatmap."""
    by_key = {r["cell"]: r for r in records}
    answered = [r["exact_match"] for r in records if r.get("exact_match") is not None]
    metrics = {
        "hit@1": float(np.mean([r["hit@1"] for r in records])),
        f"hit@{k}": float(np.mean([r[f"hit@{k}"] for r in records])),
        "chance@1": float(np.mean([r["chance@1"] for r in records])),
        "exact_match": float(np.mean(answered)) if answered else None,
    }
    grid = [[by_key[cell_key(n, d)]["hit@1"] for n in lengths] for d in depths]
    return {"task": "niah", "n": len(records), "k": k, "metrics": metrics,
            "grid": {"lengths": list(lengths), "depths": list(depths), "hit@1": grid}, "cells": records}


def table(summary: dict) -> str:
    """hit@1 by depth (rows) and length (columns), then the overall metrics."""
    g = summary["grid"]
    rows = [[f"{d:g}", *row] for d, row in zip(g["depths"], g["hit@1"], strict=True)]
    text = format_table(["depth \\ frames", *map(str, g["lengths"])], rows)
    m = summary["metrics"]
    parts = [f"{name} {value:.3f}" for name, value in m.items() if value is not None]
    return f"{text}\n{summary['n']} cells ({summary['mode']}, {summary['model']}): " + ", ".join(parts)


def plot_heatmap(summary: dict, out: Path) -> Path:
    """LongVA-style heatmap: depth (rows) x haystack frames (columns), colour = hit@1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = summary["grid"]
    data = np.asarray(g["hit@1"], np.float32)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(g["lengths"]) + 2), max(2.5, 0.5 * len(g["depths"]) + 1.5)),
                           dpi=120)
    im = ax.imshow(data, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(g["lengths"])), [str(n) for n in g["lengths"]])
    ax.set_yticks(range(len(g["depths"])), [f"{d:g}" for d in g["depths"]])
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("haystack frames (1 FPS)")
    ax.set_ylabel("needle depth")
    m = summary["metrics"]
    ax.set_title(f"V-NIAH hit@1 {m['hit@1']:.3f} ({summary['mode']}: {Path(summary['model']).name})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save_png(fig, out)
