"""`salova status` (alias `ls`) and `salova rm PATH...`: what the index holds, and forgetting entries."""

from __future__ import annotations

from pathlib import Path

import typer

from salova_cli.common import INDEX_HELP, index_dir, print_json


def status(
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> int:
    """What the index holds: videos, hours, segments, failures and why, size, models, last run."""
    from salova.pipeline.library import library_status

    s = library_status(index_dir(index))
    if as_json:
        print_json(s)
        return 0
    model = s["models"]["encoder"] + (f" + checkpoint {s['models']['checkpoint']}" if s["models"]["checkpoint"] else "")
    typer.echo(f"{s['index']}: {s['videos']} videos, {s['hours']:.2f} h, {s['segments']} segments, "
               f"{s['failed']} failed, {s['bytes'] / 2**20:.1f} MiB")
    typer.echo(f"  model: {model}; latents {s['latent_dtype']}; last run {s['last_run'] or 'never'}")
    for f in s["failures"]:
        typer.echo(f"  failed: {f['path']}: {f['error']}")
    for d in s["damaged"]:
        typer.echo(f"  damaged: {d['path']}: {d['warning']}")
    for p in s["missing"]:
        typer.echo(f"  missing: {p} (salova index --prune drops it)")
    return 0


def rm(
    paths: list[Path] = typer.Argument(..., help="Files or folders whose entries to remove (the files are kept)."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> int:
    """Remove entries from the index (never the video files themselves)."""
    from salova.pipeline.library import remove_entries

    removed, unmatched = remove_entries(index_dir(index), paths)
    if as_json:
        print_json({"removed": removed, "not_in_index": unmatched})
    else:
        for p in removed:
            typer.echo(f"removed {p}")
    for p in unmatched:
        typer.echo(f"salova: {p}: not in the index", err=True)
    return 1 if unmatched else 0
