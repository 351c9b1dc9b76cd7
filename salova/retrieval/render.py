"""Rendering results for people: clock times and the score timeline plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salova.errors import option_problem
from salova.retrieval.results import AskResult


def hms(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


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
    return save_png(fig, out)


def save_png(fig, out: Path) -> Path:
    """Lay out, write ``fig`` to ``out`` as PNG (its folder made if needed) and close it; a ``--plot`` usage
    error when the file cannot be written."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    except OSError as exc:
        raise option_problem("plot", f"{out}: cannot write ({exc.strerror})") from None
    finally:
        plt.close(fig)
    return out
