"""One self-contained HTML page for a question or a batch: answer, score timeline, moments with thumbnails.

Everything is inline (CSS, an SVG timeline, JPEG thumbnails as data URLs), so the page can be mailed or
archived as one file. Each moment links to the video at its start (``video.mp4#t=START``, relative to the
page), which browsers open at that time.
"""

from __future__ import annotations

import base64
import html
import io
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from salova.errors import VideoOpenError, option_problem
from salova.retrieval.render import hms
from salova.retrieval.results import AskResult

THUMB_SIDE = 320  # px, longer side of a thumbnail as stored (shown at most 240 px wide)

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; background: #fff; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-bottom: 4px; }
a { color: #234; }
.result { border-top: 1px solid #ccc; padding: 12px 0 20px; }
.video { color: #666; font-size: 13px; }
.answer { white-space: pre-wrap; background: #f4f4f4; padding: 10px 12px; border-radius: 4px; }
.meta { color: #777; font-size: 12px; }
.moments { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 10px; }
.moment { width: 240px; font-size: 13px; }
.moment img { width: 240px; height: auto; display: block; border: 1px solid #999; }
.transcript { color: #444; font-style: italic; }
.error { color: #a00; }
svg text { font: 10px system-ui, sans-serif; fill: #555; }
"""


def write_report(results: Sequence[AskResult], out: Path, errors: Sequence[dict] = (),
                 title: str | None = None) -> Path:
    """Write the page for ``results`` (and failed batch lines ``errors``: {"line", "error", ...}) to ``out``."""
    out = Path(out)
    blocks = [_result_block(r, out.parent.resolve()) for r in results]
    blocks += [f'<div class="result error">line {html.escape(str(e.get("line", "?")))}: '
               f'{html.escape(str(e.get("error", "")))}</div>' for e in errors]
    if title is None:
        videos = sorted({Path(r.video).name for r in results})
        title = f"salova: {', '.join(videos[:3])}{' ...' if len(videos) > 3 else ''}"
        title += f" ({len(results)} questions)" if len(results) != 1 else ""
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style>'
    page = (f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body><h1>{html.escape(title)}</h1>\n'
            + "\n".join(blocks) + "\n</body></html>\n")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise option_problem("html", f"{out}: cannot write ({exc.strerror})") from None
    return out


def _result_block(r: AskResult, page_dir: Path) -> str:
    video = Path(r.video)
    thumbs = _thumbnails(video, [m.at_s for m in r.moments])
    transcripts = {m.get("rank"): m.get("transcript") or [] for m in r.answer_moments}
    cards = []
    for m, thumb in zip(r.moments, thumbs, strict=True):
        link = f"{_video_href(video, page_dir)}#t={m.start_s:g}"
        img = f'<img src="{thumb}" alt="frame at {hms(m.at_s)}">' if thumb else '<div class="meta">no frame</div>'
        speech = "".join(f'<div class="transcript">[{hms(ln["start_s"])}] {html.escape(ln["text"])}</div>'
                         for ln in transcripts.get(m.rank, []))
        cards.append(
            f'<div class="moment"><a href="{html.escape(link)}">{img}</a>'
            f'<div><b>#{m.rank}</b> <a href="{html.escape(link)}">{hms(m.start_s)}-{hms(m.end_s)}</a></div>'
            f'<div class="meta">frame at {hms(m.at_s)} &middot; score {m.score:.3f}</div>'
            f'{speech or "<div class=meta>no transcript indexed</div>"}</div>'
        )
    if r.answer is not None:
        answer = (f'<div class="answer">{html.escape(r.answer)}</div>'
                  f'<div class="meta">answered by {html.escape(r.answerer or "?")}</div>')
    else:
        answer = f'<div class="meta">no answer: {html.escape(r.note or "")}</div>'
    return (
        f'<div class="result"><h2>{html.escape(r.question)}</h2><div class="video">{html.escape(video.name)} '
        f"&middot; {html.escape(r.mode)} &middot; {html.escape(r.model)}</div>{answer}"
        f"{_timeline_svg(r)}<div class=\"moments\">{''.join(cards)}</div></div>"
    )


def _video_href(video: Path, page_dir: Path) -> str:
    """The video's address relative to the page (absolute ``file://`` when no relative path exists)."""
    try:
        rel = os.path.relpath(video, page_dir)
    except ValueError:  # another drive (Windows)
        return video.resolve().as_uri()
    return urllib.parse.quote(Path(rel).as_posix())


def _thumbnails(video: Path, times: list[float]) -> list[str | None]:
    """JPEG data URLs of the frames at ``times`` (None each when the video cannot be read any more)."""
    if not times:
        return []
    from salova.video.seek import frames_at

    try:
        frames = frames_at(video, times, max_side=THUMB_SIDE)
    except VideoOpenError:
        return [None] * len(times)
    return [_jpeg(f) for f in frames]


def _jpeg(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _timeline_svg(r: AskResult, width: int = 960, height: int = 90) -> str:
    """Every segment's score as a bar over time; the top-K moments dark with their rank above."""
    if not r.segments:
        return ""
    end = max(e for _, e in r.segments) or 1.0
    scores = np.asarray(r.scores, np.float64)
    lo, hi = float(scores.min()), float(scores.max())
    span = hi - lo or 1.0
    plot_h = height - 26
    top = {m.segment: m.rank for m in r.moments}
    bars = []
    for i, ((s, e), score) in enumerate(zip(r.segments, scores, strict=True)):
        x, w = s / end * width, max((e - s) / end * width - 1, 1)
        h = 4 + (score - lo) / span * (plot_h - 16)
        y = plot_h - h
        color = "#333" if i in top else "#bbb"
        bars.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}">'
                    f"<title>{hms(s)}-{hms(e)} score {score:.3f}</title></rect>")
        if i in top:
            bars.append(f'<text x="{x + w / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle">#{top[i]}</text>')
    anchors = {0: "start", 1: "end"}
    ticks = [f'<text x="{f * width:.1f}" y="{height - 4}" text-anchor="{anchors.get(f, "middle")}">'
             f"{hms(f * end)}</text>" for f in (0, 0.25, 0.5, 0.75, 1)]
    return (f'<svg class="timeline" width="100%" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="score timeline">{"".join(bars)}<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" '
            f'stroke="#999"/>{"".join(ticks)}</svg>')


def export_moments(result: AskResult, out_dir: Path) -> list[dict]:
    """Each moment of ``result`` cut out as ``OUT_DIR/<video>_<start>-<end>.mp4`` (seconds) (``salova.video.clip``; the
    same moment asked about twice is one file): [{"rank", "path", "start_s", "end_s", "mode"}]."""
    from salova.video.clip import export_clip

    video = Path(result.video)
    out = []
    for m in sorted(result.moments, key=lambda m: m.rank):
        name = f"{video.stem}_{m.start_s:09.3f}-{m.end_s:09.3f}.mp4"  # seconds: sortable, unique per segment
        clip = export_clip(video, m.start_s, m.end_s, Path(out_dir) / name)
        out.append({"rank": m.rank, "path": str(clip.path), "start_s": m.start_s, "end_s": clip.end_s,
                    "mode": clip.mode})
    return out
