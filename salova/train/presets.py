"""Training configuration: one dataclass, the paper's three stages as presets (Table 5), config files.

Resolution order (later wins): the stage preset, a YAML/JSON config file, command-line flags.
``TrainConfig.validate`` collects every problem and raises one ``UsageError`` that says how to fix it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from salova.errors import UsageError

STAGES = ("1", "1.5", "2")
# Trainable parts. "text_encoder"/"vision_encoder" are the two towers of the CLIP/SigLIP encoder.
PARTS = ("connector", "router", "projector", "llm", "text_encoder", "vision_encoder")
DEFAULT_ENCODER = "openai/clip-vit-large-patch14-336"  # paper: CLIP-ViT-L/14-336
DEFAULT_LLM = "meta-llama/Llama-3.2-3B-Instruct"  # paper's 3B variant


@dataclass
class TrainConfig:
    """Everything ``salova train`` needs; defaults are stage 2 of the paper (``stage_preset`` fills the rest)."""

    stage: str = "2"  # paper stage: "1" alignment, "1.5" SceneWalk knowledge injection, "2" instruction tuning
    # ---- data
    data: list[str] = field(default_factory=list)  # LLaVA-style .json and/or SceneWalk .jsonl files
    video_root: str | None = None  # relative "video" paths are resolved here (default: the data file's folder)
    image_root: str | None = None  # relative "image" paths are resolved here (default: video_root)
    output: str = "salova-ckpt"  # output directory: a SALOVA checkpoint + checkpoints/ for resuming
    fps: float = 1.0  # frames per second sampled from videos (paper: 1)
    max_segment_s: float = 60.0  # without scenes in the data: split scenes longer than this (as `salova index`)
    decoder: str = "auto"  # video decoding backend: auto, opencv, pyav, decord
    # ---- model
    init: str | None = None  # SALOVA checkpoint to start from (stage N+1 starts from stage N's output)
    encoder: str = DEFAULT_ENCODER  # fresh model only (no init): CLIP/SigLIP hub id or dir
    llm: str | None = DEFAULT_LLM  # fresh model only: causal LM hub id or dir; None = retrieval-only training
    model_overrides: dict = field(default_factory=dict)  # fresh model only: {"connector": {...}, "router": {...}}
    # ---- what trains, and how fast
    train_parts: list[str] = field(default_factory=lambda: list(PARTS))  # stage 1: connector, projector, router
    lr: float = 2e-5  # connector, router, projector (and the LLM unless llm_lr is set)
    llm_lr: float | None = None  # None: same as lr (paper: one lr for "LLM, others")
    encoder_lr: float = 2e-6  # vision and text towers (paper: 2e-6 in stages 1.5 and 2)
    weight_decay: float = 0.0  # AdamW weight decay (reference scripts: 0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    warmup_ratio: float = 0.03  # linear warm-up over this fraction of the steps, then cosine decay to 0
    global_batch_size: int = 64  # samples per optimizer step over all processes (gradient accumulation fills it)
    micro_batch_size: int = 1  # samples per process per forward pass
    epochs: int = 1  # passes over the data (paper: 1)
    max_steps: int | None = None  # stop after this many optimizer steps (None: epochs decide)
    max_grad_norm: float = 1.0  # gradient clipping (paper: 1)
    precision: str = "auto"  # auto (bf16 where the GPU supports it, else fp32), bf16, fp32
    gradient_checkpointing: bool = True  # on the trained LLM/encoder towers (paper: on)
    seed: int = 42  # data order, token drop and loss sampling
    # ---- SALOVA specifics
    max_token_drop: float = 0.4  # connector's dynamic token drop ceiling (0.0 / 0.7 / 0.4)
    max_length: int = 8192  # LLM sequence length; longer inputs are cut from the end (paper: 8192)
    top_k: int = 5  # focus segments fed to the LLM (paper: 5)
    focus: str = "labels"  # focus segments in training: "labels" (positives, then router top) or "router"
    sim_loss_weight: float = 1.0  # weight of the similarity loss added to the LM loss (stage 1: 5.0)
    sim_margin: float = 0.2  # margin delta of the similarity loss
    v2t_threshold: float = 0.18  # segment is relevant when its video-to-text score exceeds this (paper)
    t2t_threshold: float = 0.8  # ... or its text-to-text score exceeds this (paper)
    max_positives: int = 5  # at most this many labelled segments go to the LLM as focus (loss targets: all)
    router_query: str = "question"  # text the router scores segments against: "question" or "answer"
    in_batch_negatives: bool = False  # also score each text against the other samples' segments (negatives)
    margin_term: bool = True  # add Eq. 1's score margin term to the BCE (reference: stages 1.5 and 2 only)
    prompt: str = "chat"  # LLM prompt: "chat" (template + question) or "plain" (visual + answer; reference 1, 1.5)
    train_vision_encoder: bool | None = None  # None: as train_parts says; true/false adds/removes vision_encoder
    feature_cache: bool = False  # keep frozen-encoder frame features in memory across epochs
    # ---- running
    deepspeed: str | None = None  # user DeepSpeed JSON; "auto" values and missing batch keys are filled in
    num_workers: int = 2  # data-loading processes (video decoding) per training process
    save_every: int = 500  # save a resumable checkpoint every N optimizer steps (0: only at the end/Ctrl-C)
    keep_checkpoints: int = 2  # resumable checkpoints kept (oldest deleted)
    resume: bool = False  # continue from the latest resumable checkpoint in output/checkpoints
    progress: bool = True  # tqdm progress bar on rank 0

    # ------------------------------------------------------------------ checks
    def validate(self) -> TrainConfig:
        """Raise one UsageError listing every problem (with the fix), or return self."""
        p = []
        if self.stage not in STAGES:
            p.append(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        if not self.data:
            p.append("no training data: pass --data FILE (.json LLaVA-style or .jsonl SceneWalk)")
        bad = [x for x in self.train_parts if x not in PARTS]
        if bad:
            p.append(f"train_parts {bad}: expected a subset of {', '.join(PARTS)}")
        if not self.train_parts:
            p.append("train_parts is empty: nothing would train")
        for name in ("lr", "encoder_lr", "eps", "fps", "max_segment_s"):
            if not getattr(self, name) > 0:
                p.append(f"{name} must be > 0, got {getattr(self, name)}")
        if self.llm_lr is not None and not self.llm_lr > 0:
            p.append(f"llm_lr must be > 0, got {self.llm_lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            p.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.warmup_ratio < 1:
            p.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("global_batch_size", "micro_batch_size", "epochs", "max_length", "top_k", "max_positives"):
            if getattr(self, name) < 1:
                p.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            p.append(f"max_steps must be >= 1, got {self.max_steps}")
        if self.max_grad_norm < 0:
            p.append(f"max_grad_norm must be >= 0 (0 disables clipping), got {self.max_grad_norm}")
        if self.precision not in ("auto", "bf16", "fp32"):
            p.append(f"precision {self.precision!r}: expected auto, bf16 or fp32")
        if not 0 <= self.max_token_drop < 1:
            p.append(f"max_token_drop must be in [0, 1), got {self.max_token_drop}")
        if self.focus not in ("labels", "router"):
            p.append(f"focus {self.focus!r}: expected labels or router")
        if self.prompt not in ("chat", "plain"):
            p.append(f"prompt {self.prompt!r}: expected chat or plain")
        if self.router_query not in ("question", "answer"):
            p.append(f"router_query {self.router_query!r}: expected question or answer")
        if self.decoder not in ("auto", "opencv", "pyav", "decord"):
            p.append(f"decoder {self.decoder!r}: expected auto, opencv, pyav or decord")
        if self.save_every < 0 or self.keep_checkpoints < 1 or self.num_workers < 0:
            p.append("save_every and num_workers must be >= 0, keep_checkpoints >= 1")
        if self.sim_loss_weight < 0:
            p.append(f"sim_loss_weight must be >= 0, got {self.sim_loss_weight}")
        if p:
            raise UsageError("bad training configuration: " + "; ".join(p))
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    key = _stage_key(stage)
    return TrainConfig(stage=key, **STAGE_PRESETS[key])


def _stage_key(stage: str | float) -> str:
    key = str(stage).strip()
    key = {"1.0": "1", "2.0": "2", "15": "1.5"}.get(key, key)
    if key not in STAGES:
        raise UsageError(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    return key


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON mapping of TrainConfig fields (nested keys for model_overrides only)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError: one line for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--config {path}: cannot parse ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
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
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"unknown training option(s) {unknown}; valid: {', '.join(sorted(known))}")
    for key, value in values.items():
        setattr(cfg, key, _coerce(key, value))
    if cfg.train_vision_encoder is not None:
        cfg.train_parts = [x for x in cfg.train_parts if x != "vision_encoder"] + (
            ["vision_encoder"] if cfg.train_vision_encoder else [])
    return cfg.validate()


def parse_set(items: list[str]) -> dict:
    """``--set key=value`` pairs -> {key: value}; values parse as JSON when they can (numbers, lists, null)."""
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


def _coerce(key: str, value):
    """Types from a config file or --set: "1e-3" -> float, a single string -> list where a list is expected."""
    default = getattr(TrainConfig(), key)
    if key == "data" and isinstance(value, str | Path):
        return [str(value)]
    if key in ("data", "train_parts", "betas"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if key == "betas":
            return [_number(key, v) for v in value]
        return [str(v) for v in value]
    if key == "model_overrides":
        if not isinstance(value, dict):
            raise UsageError("model_overrides must be a mapping, e.g. {connector: {num_latents: 64}}")
        return value
    if key == "train_vision_encoder" and value is None:
        return None
    if isinstance(default, bool) or key == "train_vision_encoder":
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes", "on"):
                return True
            if value.lower() in ("false", "0", "no", "off"):
                return False
            raise UsageError(f"{key}: expected true or false, got {value!r}")
        return bool(value)
    if key in ("stage",):
        return _stage_key(value)
    if isinstance(default, float) or key in ("llm_lr",):
        return None if value is None else _number(key, value)
    if isinstance(default, int) or key in ("max_steps",):
        if value is None:
            return None
        number = _number(key, value)
        if not float(number).is_integer():
            raise UsageError(f"{key}: expected a whole number, got {value!r}")
        return int(number)
    if key == "llm" and isinstance(value, str) and value.lower() in ("none", "null", ""):
        return None  # retrieval-only training
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _number(key: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{key}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UsageError(f"{key}: expected a finite number, got {value!r}")
    return number
