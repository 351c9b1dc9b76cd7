"""A stored transcript written out: plain text, SubRip (srt), WebVTT (vtt) or JSON with word times."""

from __future__ import annotations

import json
from pathlib import Path

from salova.errors import IndexStoreError, UsageError, option_problem
from salova.speech import tables
from salova.store.store import IndexStore

FORMATS = ("txt", "srt", "vtt", "json")


def _clock(t: float, sep: str) -> str:
    ms = round(t * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(lines: list[tuple[float, float, str]], words: list[tuple[int, float, float, str]], fmt: str,
           video: str) -> str:
    """The transcript of ``video`` (lines, and words by line index) in ``fmt``."""
    if fmt == "txt":
        return "".join(f"[{_clock(s, '.')[:-4]}] {t}\n" for s, _, t in lines)
    if fmt == "srt":
        return "\n".join(f"{i}\n{_clock(s, ',')} --> {_clock(e, ',')}\n{t}\n" for i, (s, e, t) in
                         enumerate(lines, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "\n".join(f"{_clock(s, '.')} --> {_clock(e, '.')}\n{t}\n" for s, e, t in lines)
    if fmt == "json":
        by_line: dict[int, list] = {}
        for li, s, e, w in words:
            by_line.setdefault(li, []).append({"start_s": s, "end_s": e, "word": w})
        return json.dumps({"video": video, "lines": [
            {"start_s": s, "end_s": e, "text": t, "words": by_line.get(i, [])} for i, (s, e, t) in enumerate(lines)
        ]}, indent=2, ensure_ascii=False) + "\n"
    raise option_problem("format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")


def transcript(video: str | Path, index_dir: Path, fmt: str = "txt") -> str:
    """The stored transcript of an indexed video in ``fmt`` (``salova transcript``)."""
    if fmt not in FORMATS:
        raise option_problem("format", f"{fmt!r}: expected one of {', '.join(FORMATS)}")
    path = Path(video).expanduser().resolve()
    with IndexStore.open(index_dir) as store:
        rec = store.get_video(str(path))
    if rec is None or rec.status != "indexed":
        raise UsageError(f"{Path(video).name}: not in the index at {index_dir}; run `salova index` on it first")
    _, done = tables.read_fingerprint(store.root)
    if rec.id not in done:
        raise IndexStoreError(f"{path.name}: its speech is not indexed; run `salova index {video}` (without "
                              "--no-speech)")
    lines = [(s, e, t) for s, e, t, _ in tables.read_lines(store.root, rec.id)]
    return render(lines, tables.read_words(store.root, rec.id), fmt, str(path))
