"""`salova transcript VIDEO`."""

from __future__ import annotations

from pathlib import Path

import typer

from salova_cli.common import INDEX_HELP, index_dir


def transcript(
    video: Path = typer.Argument(..., help="An indexed video file."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    fmt: str = typer.Option("txt", "--format", "-f", help="txt, srt, vtt or json (with word times)."),
) -> int:
    """Print what is said in an indexed video, with times (from the index; nothing is decoded)."""
    from salova.speech.export import transcript as render_transcript

    typer.echo(render_transcript(video, index_dir(index), fmt), nl=False)
    return 0
