"""`salova clip VIDEO START END -o OUT`."""

from __future__ import annotations

from pathlib import Path

import typer

from salova.errors import UsageError
from salova_cli.common import print_json


def clip(
    video: Path = typer.Argument(..., help="The video file."),
    start: str = typer.Argument(..., help="Start: seconds or [HH:]MM:SS[.s]."),
    end: str = typer.Argument(..., help="End: seconds or [HH:]MM:SS[.s]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.mp4, .mkv, .mov)."),
    reencode: bool = typer.Option(False, "--reencode", help="Re-encode even where a stream copy is possible."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> int:
    """Cut [START, END) out of a video: stream copy where keyframes allow, re-encode otherwise."""
    from salova.video.clip import export_clip, parse_time

    if not video.is_file():
        raise UsageError(f"{video}: no such video file")
    result = export_clip(video, parse_time(start, "start"), parse_time(end, "end"), out,
                         mode="reencode" if reencode else "auto")
    if as_json:
        print_json({"path": str(result.path), "start_s": result.start_s, "end_s": result.end_s,
                    "duration_s": result.duration_s, "mode": result.mode})
    else:
        how = "stream copy" if result.mode == "copy" else "re-encoded"
        typer.echo(f"wrote {result.path} ({result.start_s:g}-{result.end_s:g} s, {how})")
    return 0
