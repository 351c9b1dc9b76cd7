"""Training options: declared once, as ``TrainConfig`` fields; the paper's three stages as presets (Table 5).

A field is the whole declaration of an option: its type and ``option(...)`` metadata (help text, bounds)
drive coercion (config files, ``--set``), validation and the generated ``salova train`` command
(``salova_cli/train_cmd.py``). Resolution order (later wins): the stage preset, a YAML/JSON config file,
explicit overrides (the command's flags). Problems are collected and raised once as a ``UsageError`` whose
``problems`` name the fields; the CLI shows them as its ``--flag`` names.

``STAGE_PRESETS`` is the one source of the stage recipes; ``training/configs/stage*.yaml`` are copies for
users to start from, and a test checks that every one of them resolves to its preset.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from salova.defaults import DEFAULT_ENCODER, DEFAULT_LLM
from salova.defaults import VIDEO_BACKENDS as BACKENDS
from salova.errors import UsageError, option_problem

STAGES = ("1", "1.5", "2")
# Trainable parts. "text_encoder"/"vision_encoder" are the two towers of the CLIP/SigLIP encoder.
PARTS = ("connector", "router", "projector", "llm", "text_encoder", "vision_encoder")
NONE_WORDS = ("none", "null", "")  # an optional text option given as one of these means "unset"


def option(default, help: str, *, path: bool = False, gt=None, ge=None, lt=None, length: int | None = None,
           nonempty: str | None = None):
    """A TrainConfig field: ``help`` is its one-line description (``salova train --help`` shows it).

    path: the value is a file or folder (lists of paths are never split at commas).
    gt / ge / lt: bounds on the value (on every item of a list); length: a list's exact length;
    nonempty: the problem reported when a list is empty.
    """
    meta = dict(help=help, path=path, gt=gt, ge=ge, lt=lt, length=length, nonempty=nonempty)
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every option of ``salova train``; defaults are stage 2 of the paper (``stage_preset`` fills the rest)."""

    stage: Literal[STAGES] = option(
        "2", "Paper stage: 1 alignment, 1.5 SceneWalk knowledge injection, 2 instruction tuning; its preset fills "
             "the options not given.")
    # ---- data
    data: list[str] = option(
        [], "Training data: LLaVA-style .json and/or SceneWalk .jsonl files.", path=True,
        nonempty="is required: LLaVA-style .json or SceneWalk .jsonl files (no training data)")
    video_root: str | None = option(None, "Folder of relative 'video' paths (unset: the data file's folder).",
                                    path=True)
    image_root: str | None = option(None, "Folder of relative 'image' paths (unset: the video root).", path=True)
    output: str = option("salova-ckpt", "Output directory: the SALOVA checkpoint, and checkpoints/ for resuming.",
                         path=True)
    fps: float = option(1.0, "Frames per second sampled from videos (paper: 1).", gt=0)
    max_segment_s: float = option(
        60.0, "Without scenes in the data: split scenes longer than this many seconds (as salova index does).", gt=0)
    decoder: Literal[BACKENDS] = option("auto", "Video decoding backend.")
    # ---- model
    init: str | None = option(None, "SALOVA checkpoint to start from (stage N+1 starts from stage N's output).")
    encoder: str = option(DEFAULT_ENCODER, "Fresh model only (no checkpoint to start from): CLIP/SigLIP hub id or "
                                           "directory.")
    llm: str | None = option(DEFAULT_LLM, "Fresh model only: causal LM hub id, directory or .gguf file; none: "
                                          "retrieval-only training.")
    model_overrides: dict = option({}, "Fresh model only: part sizes, {connector: {...}, router: {...}}.")
    # ---- what trains, and how fast
    train_parts: list[Literal[PARTS]] = option(
        list(PARTS), "Parts that train (stage 1: connector, router, projector).",
        nonempty="is empty: nothing would train")
    lr: float = option(
        2e-5, "Learning rate of the connector, router, projector (and of the LLM, unless it has its own).", gt=0)
    llm_lr: float | None = option(
        None, "Learning rate of the LLM (unset: the connector's; the paper uses one rate).", gt=0)
    encoder_lr: float = option(2e-6, "Learning rate of the vision and text encoders.", gt=0)
    weight_decay: float = option(0.0, "AdamW weight decay (reference scripts: 0).")
    betas: list[float] = option([0.9, 0.999], "AdamW betas.", ge=0, lt=1, length=2)
    eps: float = option(1e-8, "AdamW epsilon.", gt=0)
    warmup_ratio: float = option(
        0.03, "Linear warm-up over this fraction of the steps, then cosine decay to 0.", ge=0, lt=1)
    global_batch_size: int = option(
        64, "Samples per optimizer step over all processes (accumulation fills it).", ge=1)
    micro_batch_size: int = option(1, "Samples per process per forward pass.", ge=1)
    epochs: int = option(1, "Passes over the data (paper: 1).", ge=1)
    max_steps: int | None = option(None, "Stop after this many optimizer steps (unset: epochs decide).", ge=1)
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0: no clipping).", ge=0)
    precision: Literal["auto", "bf16", "fp32"] = option("auto", "auto: bf16 where the GPU supports it, else fp32.")
    gradient_checkpointing: bool = option(True, "Gradient checkpointing on the trained LLM/encoder towers.")
    seed: int = option(42, "Random seed: data order, token drop and loss sampling.")
    # ---- SALOVA specifics
    max_token_drop: float = option(0.4, "Ceiling of the connector's dynamic token drop.", ge=0, lt=1)
    max_length: int = option(8192, "LLM sequence length; longer inputs are cut from the end.", ge=1)
    top_k: int = option(5, "Focus segments fed to the LLM.", ge=1)
    focus: Literal["labels", "router"] = option(
        "labels", "Focus segments in training: labels (positives, then the router's best) or router (its top-k).")
    sim_loss_weight: float = option(1.0, "Weight of the similarity loss added to the LM loss.", ge=0)
    sim_margin: float = option(0.2, "Margin of the similarity loss.")
    v2t_threshold: float = option(0.18, "A segment is relevant if its video-to-text score exceeds this.")
    t2t_threshold: float = option(0.8, "... or its text-to-text score exceeds this.")
    max_positives: int = option(
        5, "At most this many labelled segments go to the LLM as focus (the loss keeps every positive).", ge=1)
    router_query: Literal["question", "answer"] = option("question", "Text the router scores segments against.")
    in_batch_negatives: bool = option(False, "Also score each text against the other samples' segments.")
    margin_term: bool = option(True, "Add Eq. 1's score margin term to the BCE (reference: stages 1.5 and 2).")
    prompt: Literal["chat", "plain"] = option(
        "chat", "LLM prompt: chat (template + question) or plain (visual tokens + answer; reference stages 1, 1.5).")
    train_vision_encoder: bool | None = option(
        None, "Train the vision encoder (true) or keep it frozen (false); unset: as train_parts says.")
    feature_cache: bool = option(False, "Keep frozen-encoder frame features in memory across epochs.")
    # ---- running
    deepspeed: str | None = option(
        None, "DeepSpeed JSON ('auto' values and missing batch keys are filled in; unset: a generated ZeRO-2 "
              "config).", path=True)
    num_workers: int = option(2, "Data-loading (video decoding) processes per training process.", ge=0)
    save_every: int = option(
        500, "Resumable checkpoint every N optimizer steps (0: only at the end or on Ctrl-C).", ge=0)
    keep_checkpoints: int = option(2, "Resumable checkpoints kept (the oldest are deleted).", ge=1)
    resume: bool = option(False, "Continue from the latest resumable checkpoint in the output directory.")
    progress: bool = option(True, "Progress bar on rank 0.")

    def validate(self) -> TrainConfig:
        """Raise one UsageError naming every bad field, or return self."""
        problems = [p for f in dataclasses.fields(self) for p in _check(f, getattr(self, f.name))]
        if problems:
            raise UsageError(problems=problems)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.cache
def field_types() -> dict[str, typing.Any]:
    """Each field's type, ``X | None`` for optional ones (``typing.Literal[...]`` for fixed choices)."""
    return typing.get_type_hints(TrainConfig)


# Paper Table 5 (+ reference scripts). Everything not listed is shared (TrainConfig's defaults).
STAGE_PRESETS: dict[str, dict] = {
    "1": dict(
        train_parts=["connector", "router", "projector"], lr=1e-3, global_batch_size=256, micro_batch_size=8,
        max_token_drop=0.0, sim_loss_weight=5.0,
        # Stage-1 data are captioned single clips/images: the router learns caption <-> clip matching with
        # the other samples of the micro-batch as negatives (the reference's pre-training does the same).
        router_query="answer", in_batch_negatives=True,
        margin_term=False, prompt="plain",  # reference: no margin term, the plain template (media + caption)
    ),
    "1.5": dict(
        # Paper Sec. 4.2 keeps the vision encoder frozen here; its Table 5 and the reference script train it
        # (train_vision_encoder=true). Descriptions as router queries come from the data (SceneWalk).
        train_parts=["connector", "router", "projector", "llm", "text_encoder"], lr=2e-5, encoder_lr=2e-6,
        global_batch_size=8, micro_batch_size=1, max_token_drop=0.7, sim_loss_weight=1.0, prompt="plain",
    ),
    "2": dict(
        train_parts=list(PARTS), lr=2e-5, encoder_lr=2e-6, global_batch_size=64, micro_batch_size=1,
        max_token_drop=0.4, sim_loss_weight=1.0,
    ),
}


def stage_preset(stage: str | float) -> TrainConfig:
    """The paper's configuration for ``stage`` ("1", "1.5" or "2")."""
    key = stage_key(stage)
    if key not in STAGES:
        raise option_problem("stage", f"{stage!r}: expected one of {', '.join(STAGES)}")
    return TrainConfig(stage=key, **copy.deepcopy(STAGE_PRESETS[key]))


def stage_key(stage) -> str:
    """The stage key ("1", "1.5" or "2") from the ways a stage gets written (1, 1.0, 1.5, "15"); else as text."""
    key = str(stage).strip()
    return {"1.0": "1", "2.0": "2", "15": "1.5"}.get(key, key)


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON mapping of TrainConfig fields."""
    path = Path(path)
    if not path.is_file():
        raise option_problem("config_file", f"{path}: no such file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise option_problem("config_file", f"{path}: cannot parse ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise option_problem("config_file", f"{path}: expected a mapping of option names to values")
    return data


def resolve_config(
    stage: str | float | None = None, config_file: str | Path | None = None, overrides: dict | None = None
) -> TrainConfig:
    """Stage preset, then the config file, then ``overrides`` (flags; None values mean "not given")."""
    file_values = load_config_file(config_file) if config_file is not None else {}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    chosen = stage if stage is not None else flags.get("stage", file_values.get("stage", "2"))
    cfg = stage_preset(chosen)
    values = {**file_values, **flags}
    values.pop("stage", None)
    types = field_types()
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise UsageError(f"unknown training option(s) {unknown}; valid: {', '.join(sorted(types))}")
    problems = []
    for key, value in values.items():
        try:
            setattr(cfg, key, coerce(key, value, types[key]))
        except ValueError as exc:
            problems.append((key, str(exc)))
    if problems:
        raise UsageError(problems=problems)
    if cfg.train_vision_encoder is not None:
        cfg.train_parts = [x for x in cfg.train_parts if x != "vision_encoder"] + (
            ["vision_encoder"] if cfg.train_vision_encoder else [])
    return cfg.validate()


# ---------------------------------------------------------------------------------------- by type
def coerce(key: str, value, tp):
    """A value from a config file or ``--set`` as field ``key`` of type ``tp`` ("1e-3" -> 1e-3, "a,b" -> [a, b]).

    Raises ValueError with the problem (without the field name).
    """
    base, optional = _unwrap(tp)
    if key == "stage":
        return stage_key(value)
    if value is None or (optional and base is str and str(value).strip().lower() in NONE_WORDS):
        if optional:
            return None
        raise ValueError("must be set, got null")
    origin = typing.get_origin(base)
    if origin is list:
        (item,) = typing.get_args(base)
        if isinstance(value, str | Path):  # one path, or comma-separated values
            value = [value] if _meta(key)["path"] else [v.strip() for v in str(value).split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {value!r}")
        return [coerce_scalar(v, item) for v in value]
    if base is dict:
        if not isinstance(value, dict):
            raise ValueError("must be a mapping, e.g. {connector: {num_latents: 64}}")
        return value
    return coerce_scalar(value, base)


def coerce_scalar(value, tp):
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes", "on"):
                return True
            if value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(f"{value!r} is not true or false")
        return bool(value)
    if tp in (int, float):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        if tp is int and not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number) if tp is int else number
    return value if isinstance(value, str) else str(value)  # str and Literal choices


def _check(f: dataclasses.Field, value) -> list[tuple[str, str]]:
    """Problems of one field's value, from its type and ``option`` metadata."""
    base, optional = _unwrap(field_types()[f.name])
    meta = f.metadata
    if value is None:
        return [] if optional else [(f.name, "must be set, got None")]
    is_list = typing.get_origin(base) is list
    if is_list:
        if not isinstance(value, list):
            return [(f.name, f"expected a list, got {value!r}")]
        if not value and meta["nonempty"]:
            return [(f.name, meta["nonempty"])]
        if meta["length"] is not None and len(value) != meta["length"]:
            return [(f.name, f"must be {meta['length']} values, got {value}")]
    item_type = typing.get_args(base)[0] if is_list else base
    items = value if is_list else [value]
    bad = [v for v in items if not _is_a(v, item_type)]
    if bad:
        return [(f.name, f"{bad if is_list else value!r}: expected {'a subset of ' if is_list else ''}"
                         f"{_describe(item_type, ', ' if is_list else ' or ')}")]
    bounds = _bounds(meta)
    if bounds and not all(_within(v, meta) for v in items):
        return [(f.name, f"{'values ' if is_list else ''}must be {bounds}, got {value}")]
    return []


def _unwrap(tp) -> tuple[typing.Any, bool]:
    """(type without None, whether None is allowed)."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _meta(key: str):
    return next(f.metadata for f in dataclasses.fields(TrainConfig) if f.name == key)


def _is_a(value, tp) -> bool:
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _describe(tp, last_sep: str) -> str:
    """A type for a message: its choices ("a, b or c") or its name."""
    if typing.get_origin(tp) is Literal:
        choices = [str(c) for c in typing.get_args(tp)]
        return last_sep.join([", ".join(choices[:-1]), choices[-1]]) if len(choices) > 1 else choices[0]
    return getattr(tp, "__name__", str(tp))


def _bounds(meta) -> str:
    lo = f"[{meta['ge']}" if meta["ge"] is not None else f"({meta['gt']}" if meta["gt"] is not None else None
    if lo is not None and meta["lt"] is not None:
        return f"in {lo}, {meta['lt']})"
    if lo is not None:
        return (">= " if lo[0] == "[" else "> ") + lo[1:]
    return f"< {meta['lt']}" if meta["lt"] is not None else ""


def _within(v, meta) -> bool:
    return ((meta["gt"] is None or v > meta["gt"]) and (meta["ge"] is None or v >= meta["ge"])
            and (meta["lt"] is None or v < meta["lt"]))
