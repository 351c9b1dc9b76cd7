"""`salova train --stage {1,1.5,2} --data FILE --output DIR`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from salova.train.presets import parse_set, resolve_config

_PRESET = "default: the stage preset"


def train(
    stage: str | None = typer.Option(None, "--stage", help="Paper stage: 1, 1.5 or 2 (default: the config's, else 2)."),
    data: list[Path] = typer.Option(None, "--data", help="Training data: LLaVA-style .json or SceneWalk .jsonl "
                                    "(repeatable)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output directory (the SALOVA checkpoint)."),
    video_root: Path | None = typer.Option(None, "--video-root", help="Folder of relative 'video' paths "
                                           "(default: the data file's folder)."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder of relative 'image' paths "
                                           "(default: --video-root)."),
    config: Path | None = typer.Option(None, "--config", help="YAML/JSON file of training options (flags win)."),
    init: str | None = typer.Option(None, "--init", help="SALOVA checkpoint to start from (the previous stage's "
                                    "output)."),
    encoder: str | None = typer.Option(None, "--encoder", help="Fresh model: CLIP/SigLIP hub id or dir "
                                       "(default: openai/clip-vit-large-patch14-336)."),
    llm: str | None = typer.Option(None, "--llm", help="Fresh model: causal LM hub id or dir, or 'none' for "
                                   "retrieval only (default: meta-llama/Llama-3.2-3B-Instruct)."),
    lr: float | None = typer.Option(None, "--lr", help=f"Connector/router/projector (and LLM) lr ({_PRESET})."),
    llm_lr: float | None = typer.Option(None, "--llm-lr", help="LLM lr (default: --lr)."),
    encoder_lr: float | None = typer.Option(None, "--encoder-lr", help=f"Vision/text encoder lr ({_PRESET})."),
    global_batch: int | None = typer.Option(None, "--global-batch", help=f"Samples per optimizer step ({_PRESET})."),
    micro_batch: int | None = typer.Option(None, "--micro-batch", help=f"Samples per process per pass ({_PRESET})."),
    epochs: int | None = typer.Option(None, "--epochs", help="Passes over the data (default: 1)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    warmup_ratio: float | None = typer.Option(None, "--warmup-ratio", help="Warm-up fraction (default: 0.03)."),
    max_token_drop: float | None = typer.Option(None, "--max-token-drop", help=f"Connector token drop ({_PRESET})."),
    max_length: int | None = typer.Option(None, "--max-length", help="LLM sequence length (default: 8192)."),
    top_k: int | None = typer.Option(None, "--top-k", help="Focus segments (default: 5)."),
    sim_loss_weight: float | None = typer.Option(None, "--sim-loss-weight", help=f"Similarity-loss weight "
                                                 f"({_PRESET}: 5.0 / 1.0 / 1.0)."),
    v2t_threshold: float | None = typer.Option(None, "--v2t-threshold", help="Positive if v2t score > this "
                                               "(default: 0.18)."),
    t2t_threshold: float | None = typer.Option(None, "--t2t-threshold", help="... or t2t score > this "
                                               "(default: 0.8)."),
    focus: str | None = typer.Option(None, "--focus", help="Focus segments in training: labels or router "
                                     "(default: labels)."),
    train_vision: bool | None = typer.Option(None, "--train-vision/--freeze-vision", help="Train the vision "
                                             "encoder or keep it frozen (default: the stage preset; stage 1.5: "
                                             "frozen as paper Sec. 4.2, trained in its Table 5)."),
    precision: str | None = typer.Option(None, "--precision", help="auto (bf16 where supported), bf16 or fp32."),
    deepspeed: Path | None = typer.Option(None, "--deepspeed", help="DeepSpeed JSON ('auto' values are filled "
                                          "in; default: generated ZeRO-2)."),
    save_every: int | None = typer.Option(None, "--save-every", help="Resumable checkpoint every N steps "
                                          "(default: 500)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in OUTPUT."),
    num_workers: int | None = typer.Option(None, "--num-workers", help="Decoding processes per GPU (default: 2)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: 42)."),
    set_: list[str] = typer.Option(None, "--set", help="Any other option as KEY=VALUE (repeatable), e.g. "
                                   "--set router_query=answer."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved options and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    local_rank: int | None = typer.Option(None, "--local_rank", "--local-rank", hidden=True,
                                          help="Set by the deepspeed launcher."),
) -> int:
    """Train SALOVA (paper stages 1, 1.5, 2) on DeepSpeed ZeRO-2; runs under deepspeed/torchrun for many GPUs."""
    from salova.train import train as run_training

    if local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
    flags = dict(
        data=[str(p) for p in data] if data else None, output=str(output) if output else None,
        video_root=_str(video_root), image_root=_str(image_root), init=init, encoder=encoder,
        llm=llm, lr=lr, llm_lr=llm_lr,
        encoder_lr=encoder_lr, global_batch_size=global_batch, micro_batch_size=micro_batch, epochs=epochs,
        max_steps=max_steps, warmup_ratio=warmup_ratio, max_token_drop=max_token_drop, max_length=max_length,
        top_k=top_k, sim_loss_weight=sim_loss_weight, v2t_threshold=v2t_threshold, t2t_threshold=t2t_threshold,
        focus=focus, train_vision_encoder=train_vision, precision=precision, deepspeed=_str(deepspeed),
        save_every=save_every,
        resume=resume or None, num_workers=num_workers, seed=seed, progress=False if quiet or as_json else None,
    )
    flags.update(parse_set(set_ or []))
    cfg = resolve_config(stage, config, flags)
    if print_config:
        typer.echo(json.dumps(cfg.to_dict(), indent=2))
        return 0
    result = run_training(cfg)
    if os.environ.get("RANK", "0") != "0" or quiet:
        return result.exit_code
    if as_json:
        typer.echo(json.dumps(result.__dict__, indent=2, default=str))
    elif result.interrupted:
        typer.echo(f"{result.interrupted}: stopped at step {result.steps}/{result.total_steps}; resumable checkpoint "
                   f"{result.checkpoint} (run the same command with --resume)", err=True)
    else:
        loss = "" if result.first_loss is None else f"; loss {result.first_loss:.4f} -> {result.last_loss:.4f}"
        skipped = sum(result.skipped.values())
        note = f"; skipped {skipped} ({', '.join(f'{n} {r}' for r, n in result.skipped.items())})" if skipped else ""
        typer.echo(f"stage {cfg.stage}: {result.steps} steps, {result.samples_seen} samples in "
                   f"{result.seconds:.1f}s{loss}{note} -> {result.output}")
    return result.exit_code


def _str(p: Path | None) -> str | None:
    return str(p) if p is not None else None
