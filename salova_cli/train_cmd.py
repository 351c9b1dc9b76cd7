"""`salova train --stage {1,1.5,2} --data FILE --output DIR`, generated from ``TrainConfig``.

Every field of ``salova.train.config.TrainConfig`` is an option: its help, type and default come from the
field. The fields in ``FLAGS`` get a flag of their own (``--field-name`` unless named there); the others
are set with ``--set KEY=VALUE`` or in a ``--config`` file. Only flag wording lives here.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import typing
from pathlib import Path

import typer

from salova.errors import UsageError
from salova.train.config import STAGE_PRESETS, STAGES, TrainConfig, field_types, resolve_config

# Fields with a flag, in --help order: () is --field-name, else the flag's names.
FLAGS: dict[str, tuple[str, ...]] = {
    "stage": (), "data": (), "output": ("--output", "-o"), "video_root": (), "image_root": (), "init": (),
    "encoder": (), "llm": (), "lr": (), "llm_lr": (), "encoder_lr": (), "global_batch_size": ("--global-batch",),
    "micro_batch_size": ("--micro-batch",), "epochs": (), "max_steps": (), "warmup_ratio": (), "max_token_drop": (),
    "max_length": (), "top_k": (), "sim_loss_weight": (), "v2t_threshold": (), "t2t_threshold": (), "focus": (),
    "train_vision_encoder": ("--train-vision/--freeze-vision",),
    "precision": (), "deepspeed": (), "save_every": (), "resume": (), "num_workers": (), "seed": (),
}
# Names the library gives to things that are not TrainConfig fields.
_OTHER_FLAGS = {"config_file": "--config"}


def flag_of(field: str) -> str:
    """How the command line spells a TrainConfig field (``global_batch_size`` -> ``--global-batch``)."""
    if field in FLAGS:
        return (FLAGS[field] or ("--" + field.replace("_", "-"),))[0].split("/")[0]  # an on/off pair: its "on"
    if field in _OTHER_FLAGS:
        return _OTHER_FLAGS[field]
    return f"--set {field}" if field in field_types() else field


def set_keys() -> list[str]:
    """The fields without a flag of their own, set with --set KEY=VALUE."""
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in FLAGS]


def parse_set(items: list[str]) -> dict:
    """``--set key=value`` pairs -> {key: value}; values parse as JSON when they can (numbers, lists, null);
    dotted keys nest (``model_overrides.connector.num_latents=64``)."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set warmup_ratio=0.05")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _run(options: dict) -> int:
    """The command's body: flags -> overrides -> ``resolve_config`` -> ``salova.train.train`` -> summary."""
    from salova.train import train as run_training

    if options["local_rank"] is not None:
        os.environ.setdefault("LOCAL_RANK", str(options["local_rank"]))
    quiet, as_json = options["quiet"], options["as_json"]
    overrides = {name: _from_flag(options[name]) for name in FLAGS if name != "stage"}
    overrides["progress"] = False if quiet or as_json else None
    overrides.update(parse_set(options["set_"] or []))
    try:
        cfg = resolve_config(options["stage"], options["config"], overrides)
        if options["print_config"]:
            typer.echo(json.dumps(cfg.to_dict(), indent=2))
            return 0
        result = run_training(cfg)
    except UsageError as exc:  # the library names fields; say it with flags
        raise UsageError(exc.describe(flag_of)) from None
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


def _from_flag(value):
    """A flag's value as the library takes it: paths as text, an absent flag (None, [], off) as None."""
    if isinstance(value, list | tuple):
        return [str(v) for v in value] or None
    if isinstance(value, Path):
        return str(value)
    return None if value is False else value


# ---------------------------------------------------------------------------------------- generation
def _field_option(field: dataclasses.Field, tp) -> tuple[typing.Any, typing.Any]:
    """(annotation, typer.Option) of a field's flag: bools are switches, lists repeat, choices show."""
    names = FLAGS[field.name] or ("--" + field.name.replace("_", "-"),)
    args = typing.get_args(tp)
    base = next(a for a in args if a is not type(None)) if type(None) in args else tp  # X | None -> X
    help_text = field.metadata["help"] + _default_note(field)
    path = field.metadata["path"]
    if base is bool:
        return bool, typer.Option(False, *names, help=help_text)
    if typing.get_origin(base) is list:
        item = Path if path else str
        return list[item], typer.Option(None, *names, help=help_text + " Repeatable.")
    if typing.get_origin(base) is typing.Literal:
        choices = "|".join(str(c) for c in typing.get_args(base))
        return str | None, typer.Option(None, *names, metavar=f"[{choices}]", help=help_text)
    kind = Path if path else base
    return kind | None, typer.Option(None, *names, help=help_text)


def _default_note(field: dataclasses.Field) -> str:
    """The help's "(default: X)": the field's default, or the stage presets' values where they differ."""
    default = getattr(TrainConfig(), field.name)
    per_stage = [STAGE_PRESETS[s].get(field.name, default) for s in STAGES]
    if any(v != default for v in per_stage):
        return f" (default by stage {' / '.join(STAGES)}: {' / '.join(_shown(v) for v in per_stage)})"
    if default is None or isinstance(default, bool) or default in ([], {}):
        return ""
    return f" (default: {_shown(default)})"


def _shown(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def _command():
    """A function whose signature is the command's options, for typer: the fields in FLAGS, then the
    command's own options."""
    types = field_types()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    params = [(name, *_field_option(fields[name], types[name])) for name in FLAGS]
    set_help = ("Any other option as KEY=VALUE (repeatable; VALUE parses as JSON), e.g. --set router_query=answer. "
                f"Keys: {', '.join(set_keys())}.")
    params += [
        ("config", Path | None, typer.Option(None, "--config", help="YAML/JSON file of training options (flags "
                                             "win; the file wins over the stage preset).")),
        ("set_", list[str], typer.Option(None, "--set", help=set_help)),
        ("print_config", bool, typer.Option(False, "--print-config", help="Print the resolved options and exit.")),
        ("as_json", bool, typer.Option(False, "--json", help="Print a machine-readable summary.")),
        ("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bar and no summary.")),
        ("local_rank", int | None, typer.Option(None, "--local_rank", "--local-rank", hidden=True,
                                                help="Set by the deepspeed launcher.")),
    ]

    def train(**options) -> int:
        return _run(options)

    train.__doc__ = ("Train SALOVA (paper stages 1, 1.5, 2) on DeepSpeed ZeRO-2; runs under deepspeed/torchrun for "
                     "many GPUs. Options not given come from --config, then the stage preset.")
    train.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=ann)
         for name, ann, opt in params])
    train.__annotations__ = {name: ann for name, ann, _ in params} | {"return": int}
    return train


train = _command()
