"""DeepSpeed set-up: process environment, the ZeRO-2 config generated from a TrainConfig, param groups, schedule,
safe checkpoint loading, and the signal flag that stops training at a checkpoint.

Launchers: ``deepspeed``/``torchrun`` set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a
plain ``salova train`` gets a one-process world (otherwise DeepSpeed goes looking for MPI). Without a GPU,
everything runs on the CPU with the gloo backend.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import signal
import socket
import threading
from pathlib import Path

import torch

from salova.errors import option_problem
from salova.train.config import TrainConfig

logger = logging.getLogger(__name__)


def setup_process_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); fills a single-process world in when no launcher set one up."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = os.environ.get("MASTER_PORT") or str(free_port())
    os.environ.setdefault("LOCAL_RANK", os.environ.get("RANK", "0"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # say so instead of letting DeepSpeed guess (and warn)
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(local_rank: int) -> torch.device:
    """Initialise torch.distributed through DeepSpeed; returns this process's device."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    accel = get_accelerator()
    if accel.device_name() == "cpu":
        # DeepSpeed's shared-memory all-reduce for CPUs is a C++ extension compiled on first use (~40 s and a
        # compiler); gloo does the few reductions a CPU run needs.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    else:
        accel.set_device(local_rank)
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend=accel.communication_backend_name())
    return torch.device(accel.device_name(local_rank) if accel.device_name() != "cpu" else "cpu")


def use_bf16(precision: str) -> bool:
    if precision == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return precision == "bf16"


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    per_step = cfg.micro_batch_size * world_size
    if cfg.global_batch_size % per_step:
        lo = max(per_step, cfg.global_batch_size // per_step * per_step)
        raise option_problem("global_batch_size", f"{cfg.global_batch_size} is not a multiple of the micro-batch size "
                             f"{cfg.micro_batch_size} x {world_size} process(es): use {lo} or {lo + per_step}, or "
                             "change the micro-batch size")
    return cfg.global_batch_size // per_step


def deepspeed_config(cfg: TrainConfig, world_size: int, user_file: str | Path | None = None) -> dict:
    """ZeRO-2 config from the preset; a user file wins except where it says "auto" or leaves a key out."""
    accum = accumulation_steps(cfg, world_size)
    generated = {
        "train_batch_size": cfg.global_batch_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": cfg.max_grad_norm,
        "bf16": {"enabled": use_bf16(cfg.precision)},
        "zero_optimization": {
            "stage": 2, "overlap_comm": True, "contiguous_gradients": True, "reduce_scatter": True,
            "reduce_bucket_size": 200_000_000, "allgather_bucket_size": 200_000_000,
        },
        # torch's AdamW (no compiled CPU/fused Adam needed); per-group learning rates come with the groups.
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": cfg.lr, "betas": list(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay,
                       "torch_adam": True},
        },
        "steps_per_print": 1_000_000_000,  # salova logs progress itself
        "wall_clock_breakdown": False,
    }
    if user_file is None:
        return generated
    path = Path(user_file)
    try:
        user = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise option_problem("deepspeed", f"{path}: cannot read a JSON config ({exc})") from None
    if not isinstance(user, dict):
        raise option_problem("deepspeed", f"{path}: expected a JSON object")
    merged = _fill_auto(copy.deepcopy(user), generated, path)
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"):
        merged.setdefault(key, generated[key])
    for key in ("optimizer", "zero_optimization", "bf16", "gradient_clipping"):
        merged.setdefault(key, generated[key])
    stage = merged.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2):
        raise option_problem("deepspeed", f"{path}: ZeRO stage {stage} is not supported (parameters would be "
                             "partitioned); use stage 2 (the paper's) or lower")
    tb, mb, ga = (merged[k] for k in ("train_batch_size", "train_micro_batch_size_per_gpu",
                                      "gradient_accumulation_steps"))
    if tb != mb * ga * world_size:
        raise option_problem("deepspeed", f"{path}: train_batch_size {tb} != micro-batch {mb} x accumulation {ga} x "
                             f"{world_size} process(es); set them to \"auto\"")
    return merged


def _fill_auto(user, generated, path: Path, where: str = ""):
    if isinstance(user, dict):
        for key, value in user.items():
            sub = generated.get(key) if isinstance(generated, dict) else None
            if value == "auto":
                if sub is None:
                    raise option_problem("deepspeed", f"{path}: no value to fill in for \"auto\" at {where}{key}")
                user[key] = sub
            else:
                user[key] = _fill_auto(value, sub, path, f"{where}{key}.")
    return user


def cosine_with_warmup(total_steps: int, warmup_steps: int):
    """lr multiplier per step: linear warm-up from 0, then cosine decay to 0 (the HF Trainer's "cosine")."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    return factor


def param_groups(model, cfg: TrainConfig) -> list[dict]:
    """Freeze everything, unfreeze ``cfg.train_parts``, and group them by learning rate.

    Groups: "modules" (connector, router, projector: lr), "llm" (llm_lr or lr), "text_encoder" and
    "vision_encoder" (encoder_lr).
    """
    model.requires_grad_(False)
    parts = set(cfg.train_parts)
    groups: dict[str, list] = {"modules": [], "llm": [], "text_encoder": [], "vision_encoder": []}
    for name in ("connector", "router", "projector"):
        if name in parts:
            groups["modules"] += list(getattr(model, name).parameters())
    if "llm" in parts and model.llm is not None:
        groups["llm"] += list(model.llm.model.parameters())
    if model.encoder is not None:
        for name, p in model.encoder.model.named_parameters():
            tower = name.split(".", 1)[0]
            if tower in ("text_model", "text_projection") and "text_encoder" in parts:
                groups["text_encoder"].append(p)
            elif tower in ("vision_model", "visual_projection") and "vision_encoder" in parts:
                groups["vision_encoder"].append(p)
    lrs = {"modules": cfg.lr, "llm": cfg.llm_lr or cfg.lr, "text_encoder": cfg.encoder_lr,
           "vision_encoder": cfg.encoder_lr}
    out = []
    for name, params in groups.items():
        if params:
            for p in params:
                p.requires_grad_(True)
            out.append({"params": params, "lr": lrs[name], "name": name})
    return out


@contextlib.contextmanager
def broadcast_parameters_first(module: torch.nn.Module, device: torch.device, world_size: int):
    """Move ``module`` to ``device`` and broadcast its parameters from rank 0 ourselves, then build the engine
    without DeepSpeed's own initial broadcast.

    DeepSpeed 0.19 views every parameter as bytes for that broadcast, which fails for 0-dim parameters
    (CLIP's and the router's ``logit_scale``); a 1-element view of the same storage does the same job.
    """
    from deepspeed.runtime.engine import DeepSpeedEngine

    module.to(device)
    if world_size > 1:
        with torch.no_grad():
            for p in module.parameters():
                torch.distributed.broadcast(p.data.reshape(-1), src=0)
    original = DeepSpeedEngine._broadcast_model
    DeepSpeedEngine._broadcast_model = lambda self: None
    try:
        yield
    finally:
        DeepSpeedEngine._broadcast_model = original


@contextlib.contextmanager
def weights_only_torch_load():
    """DeepSpeed loads its checkpoint files with ``weights_only=False`` (arbitrary unpickling); force the
    restricted unpickler for the length of a resume so a tampered checkpoint cannot run code."""
    real = torch.load

    def safe_load(*args, **kwargs):
        kwargs["weights_only"] = True
        return real(*args, **kwargs)

    torch.load = safe_load
    try:
        with torch.serialization.safe_globals(_deepspeed_safe_globals()):
            yield
    finally:
        torch.load = real


def _deepspeed_safe_globals() -> list:
    """The plain-data classes DeepSpeed writes into its checkpoints (allowlisted for weights_only loads)."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


class StopFlag:
    """SIGINT/SIGTERM -> finish the current micro-batch, save a resumable checkpoint, stop."""

    def __init__(self):
        self.signal: str | None = None
        self._count = 0
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self._count += 1
        if self.signal is None:
            self.signal = signal.Signals(signum).name
            logger.warning("%s: saving a resumable checkpoint, then stopping (press Ctrl-C twice more to abort)",
                           self.signal)
        elif self._count >= 3:
            raise KeyboardInterrupt

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
