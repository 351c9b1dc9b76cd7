"""The training recipe of ``salova train``: setup / train / save_checkpoint / cleanup, on DeepSpeed ZeRO-2.

Output directory layout::

    OUT/config.json, model.safetensors   the SALOVA checkpoint (Salova.from_pretrained(OUT))
    OUT/llm/, OUT/encoder/               fine-tuned LLM / encoder when they trained (or came fine-tuned with init)
    OUT/train_config.json                the resolved configuration (+ world size, steps, precision)
    OUT/ds_config.json                   the DeepSpeed config used
    OUT/train_log.jsonl                  one line per optimizer step: loss, lm_loss, sim_loss, lr, samples/s
    OUT/train_summary.json               steps, samples, skipped samples by reason, seconds
    OUT/checkpoints/<tag>/               resumable DeepSpeed checkpoints (+ trainer_state.json), ``latest``

The resumable checkpoints are DeepSpeed's own files (``torch.save`` format). DeepSpeed would load them
with ``weights_only=False``; salova forces ``weights_only=True`` during a resume, allowlisting only the few
plain-data DeepSpeed classes they contain, so a tampered checkpoint cannot run code. Everything else salova
reads back (trainer_state.json, the SALOVA checkpoint) is JSON or safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from salova.errors import CheckpointError, option_problem
from salova.train.config import TrainConfig
from salova.train.data import Example, ReadReport, Skipped, TrainingSet, collate, read_samples
from salova.train.engine import (
    StopFlag,
    accumulation_steps,
    broadcast_parameters_first,
    cosine_with_warmup,
    deepspeed_config,
    init_distributed,
    param_groups,
    setup_process_env,
    weights_only_torch_load,
)
from salova.train.forward import SalovaForTraining

logger = logging.getLogger(__name__)

STATE_NAME = "trainer_state.json"


@dataclass
class TrainResult:
    output: str
    steps: int  # optimizer steps done (in total, over resumed runs)
    total_steps: int
    samples_seen: int  # samples consumed by this run over all processes (skipped ones included)
    skipped: dict = field(default_factory=dict)  # reason -> count (reading + decoding)
    seconds: float = 0.0
    first_loss: float | None = None
    router_queries: int = 0  # query texts that fed the similarity loss (over all steps and processes)
    last_loss: float | None = None
    interrupted: str | None = None  # "SIGINT"/"SIGTERM" when stopped by a signal (a checkpoint was saved)
    checkpoint: str | None = None  # latest resumable checkpoint

    @property
    def exit_code(self) -> int:
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.interrupted or "", 0)


def train(config: TrainConfig) -> TrainResult:
    """Run the configured training stage; the library entry point of ``salova train``."""
    recipe = TrainingRecipe(config.validate())
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.cleanup()


class TrainingRecipe:
    """One training run: ``setup()`` (processes, data, model, DeepSpeed engine), ``train()``, ``cleanup()``."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.output).expanduser()
        self.ckpt_dir = self.out / "checkpoints"
        self.stop = StopFlag()
        self.engine = None
        self.report = ReadReport()

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.cfg
        if self.ckpt_dir.is_dir() and any(self.ckpt_dir.iterdir()) and not cfg.resume:
            raise option_problem("resume", f"is not set, but {self.out} already holds training checkpoints: set it to "
                                 "continue them, or choose another output directory")
        self.rank, self.world, self.local_rank = setup_process_env()
        self.accum = accumulation_steps(cfg, self.world)  # a bad batch split fails before any loading
        ds_config = deepspeed_config(cfg, self.world, cfg.deepspeed)
        self.bf16 = bool(ds_config.get("bf16", {}).get("enabled"))
        data_log = logging.getLogger("salova.train.data")
        level = data_log.level
        if self.rank != 0:  # every rank reads the same files: report their problems once
            data_log.setLevel(logging.ERROR)
        try:
            self.samples, self.report = read_samples(cfg.data, cfg.video_root, cfg.image_root)
        finally:
            data_log.setLevel(level)
        self.device = init_distributed(self.local_rank)
        torch.manual_seed(cfg.seed)  # fresh connector/router/projector weights are the same on every rank
        model = self.build_model()
        self.model = model
        groups = param_groups(model, cfg)
        if not groups:
            raise option_problem("train_parts", f"{cfg.train_parts} match no part of this model: nothing to train")
        self.trained = {g["name"] for g in groups}
        self._gradient_checkpointing()
        wrapper = SalovaForTraining(
            model, train_vision="vision_encoder" in self.trained, train_text="text_encoder" in self.trained,
            train_llm="llm" in self.trained, top_k=cfg.top_k, focus=cfg.focus, max_positives=cfg.max_positives,
            router_query=cfg.router_query, in_batch_negatives=cfg.in_batch_negatives,
            sim_loss_weight=cfg.sim_loss_weight, sim_margin=cfg.sim_margin, margin_term=cfg.margin_term,
            prompt=cfg.prompt, max_length=cfg.max_length, feature_cache=cfg.feature_cache,
        )
        self.wrapper = wrapper
        enc = model.encoder
        fit = (enc.preprocess.size, enc.preprocess.crop)
        self.dataset = TrainingSet(
            self.samples, fps=cfg.fps, max_segment_s=cfg.max_segment_s, backend=cfg.decoder, fit=fit,
            v2t_threshold=cfg.v2t_threshold, t2t_threshold=cfg.t2t_threshold,
        )
        # Every process walks the same padded permutation: an epoch is a whole number of optimizer steps.
        self.steps_per_epoch = math.ceil(len(self.samples) / cfg.global_batch_size)
        self.total_steps = cfg.max_steps or self.steps_per_epoch * cfg.epochs
        warmup = math.ceil(cfg.warmup_ratio * self.total_steps)
        schedule = cosine_with_warmup(self.total_steps, warmup)

        import deepspeed

        self.ds_config = ds_config
        sched = None
        if "scheduler" not in ds_config:
            def sched(opt):
                return torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        with broadcast_parameters_first(wrapper, self.device, self.world):
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=wrapper, model_parameters=groups, config=ds_config, lr_scheduler=sched,
            )
        self.start_step = 0
        self.log_path = self.out / "train_log.jsonl"
        if cfg.resume:
            self.start_step = self.load_checkpoint()
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            resolved = {**cfg.to_dict(), "world_size": self.world, "gradient_accumulation_steps": self.accum,
                        "total_steps": self.total_steps, "warmup_steps": warmup, "bf16": self.bf16,
                        "samples": len(self.samples), "trained_groups": sorted(self.trained)}
            _write_json(self.out / "train_config.json", resolved)
            _write_json(self.out / "ds_config.json", ds_config)
            if not cfg.resume and self.log_path.exists():
                self.log_path.unlink()
            elif cfg.resume and self.log_path.exists():  # drop steps done after the checkpoint: they are redone
                kept = [x for x in self.log_path.read_text().splitlines()
                        if x.strip() and json.loads(x).get("step", 0) <= self.start_step]
                self.log_path.write_text("".join(x + "\n" for x in kept))
        logger.info("stage %s: %d samples, %d steps (%d per epoch), accumulation %d, world %d, %s", cfg.stage,
                    len(self.samples), self.total_steps, self.steps_per_epoch, self.accum, self.world,
                    "bf16" if self.bf16 else "fp32")

    def build_model(self):
        """The ``init`` checkpoint, or a fresh model from ``encoder``/``llm`` with the paper's part sizes."""
        from salova.models import FocusFastLM, Salova, VisionTextEncoder, config_for_encoder

        cfg = self.cfg
        dtype = torch.bfloat16 if self.bf16 else None
        if cfg.init:
            model = Salova.from_pretrained(cfg.init, dtype=dtype)
        else:
            encoder = VisionTextEncoder.from_pretrained(cfg.encoder)
            llm = FocusFastLM.from_pretrained(cfg.llm, dtype=dtype) if cfg.llm else None
            over = dict(cfg.model_overrides)
            try:
                config = config_for_encoder(encoder, llm_hidden=llm.hidden_size if llm else None,
                                            connector=over.pop("connector", {}), router=over.pop("router", {}))
            except (TypeError, ValueError) as exc:
                raise option_problem("model_overrides", f"do not fit this model ({exc})") from None
            if over:
                raise option_problem("model_overrides", f"can set only connector and router, got {sorted(over)}")
            config.llm = llm.name if llm is not None else None  # a local path made absolute
            model = Salova(config, encoder=encoder, llm=llm)
        if model.encoder is None:
            raise CheckpointError("training needs the vision/text encoder of the checkpoint")
        model.config.connector.max_token_drop = cfg.max_token_drop
        model.config.focusfast.top_k = cfg.top_k
        model.config.focusfast.max_length = cfg.max_length
        if model.llm is None and set(self.cfg.train_parts) & {"llm", "projector"}:
            logger.info("no LLM: training retrieval only (connector, router); the projector stays as it is")
            self.cfg.train_parts = [p for p in self.cfg.train_parts if p not in ("llm", "projector")]
        return model

    def _gradient_checkpointing(self) -> None:
        if not self.cfg.gradient_checkpointing:
            return
        targets = []
        if "llm" in self.trained:
            targets.append(self.model.llm.model)
            self.model.llm.model.config.use_cache = False
        if self.trained & {"text_encoder", "vision_encoder"}:
            targets.append(self.model.encoder.model)
        for m in targets:
            if hasattr(m, "activation_checkpointing_enable"):  # transformers >= 5.x
                m.activation_checkpointing_enable({"use_reentrant": False})
            else:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ------------------------------------------------------------------ data order
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's micro-batches (sample indices) for ``epoch``: a seeded permutation padded by wrapping
        around to a whole number of global batches, dealt out rank by rank."""
        n, g = len(self.samples), self.cfg.global_batch_size
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed + epoch)).tolist()
        padded = [perm[i % n] for i in range(self.steps_per_epoch * g)]
        mine = padded[self.rank :: self.world]
        mb = self.cfg.micro_batch_size
        return [mine[i : i + mb] for i in range(0, len(mine), mb)]

    # ------------------------------------------------------------------ train
    def train(self) -> TrainResult:
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        cfg, engine = self.cfg, self.engine
        self.stop.install()
        step = self.start_step
        result = TrainResult(str(self.out), step, self.total_steps, 0)
        skipped_decode: dict[str, int] = {}
        bar = None
        if self.rank == 0 and cfg.progress:
            tty = sys.stderr.isatty()  # batch-job logs get a line every 30 s, not every step
            bar = tqdm(total=self.total_steps, initial=step, desc=f"stage {cfg.stage}", unit="step",
                       dynamic_ncols=True, mininterval=0.5 if tty else 30.0)
        t_start = time.perf_counter()
        sums = torch.zeros(5, dtype=torch.float64)  # loss, lm, sim, samples, router queries (this step, this rank)
        counts = torch.zeros(3, dtype=torch.float64)
        t_step = time.perf_counter()
        micro = 0
        engine.train()
        while step < self.total_steps and result.interrupted is None:
            epoch, done = divmod(step, self.steps_per_epoch)
            batches = self.epoch_batches(epoch)[done * self.accum :]
            loader = DataLoader(self.dataset, batch_sampler=batches, collate_fn=collate, num_workers=cfg.num_workers)
            for items in loader:
                examples = [x for x in items if isinstance(x, Example)]
                for x in items:
                    if isinstance(x, Skipped):
                        skipped_decode["unreadable media"] = skipped_decode.get("unreadable media", 0) + 1
                        logger.warning("skipping %s", x.reason)
                # Same random stream for a given (step, micro-batch, rank) however often the run was resumed.
                torch.manual_seed(hash((cfg.seed, step, micro, self.rank)) % (2**63))
                out = engine(examples)
                engine.backward(out["loss"])
                lr = [g["lr"] for g in self.optimizer.param_groups]  # the rates this step uses
                engine.step()
                micro += 1
                for i, key in enumerate(("loss", "lm_loss", "sim_loss")):
                    v = float(out[key].detach())
                    if not math.isnan(v):
                        sums[i] += v
                        counts[i] += 1
                sums[3] += len(items)
                sums[4] += float(out["router_queries"])
                if micro == self.accum:  # an optimizer step happened
                    micro = 0
                    step += 1
                    stats = self._reduce(sums, counts)
                    elapsed = time.perf_counter() - t_step
                    rate = stats["samples"] / max(elapsed, 1e-9)
                    result.samples_seen += int(stats["samples"])
                    result.router_queries += int(stats["router_queries"])
                    result.last_loss = stats["loss"]
                    if result.first_loss is None:
                        result.first_loss = stats["loss"]
                    if self.rank == 0:
                        self._log(step, epoch, stats, lr, rate, time.perf_counter() - t_start)
                        if bar is not None:
                            bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{lr[0]:.2e}", samples_s=f"{rate:.1f}")
                            bar.update(1)
                    sums.zero_()
                    counts.zero_()
                    t_step = time.perf_counter()
                    if cfg.save_every and step % cfg.save_every == 0 and step < self.total_steps:
                        result.checkpoint = self.save_checkpoint(step)
                    if step >= self.total_steps:
                        break
                if self._stopping():
                    result.interrupted = self.stop.signal or "SIGINT"
                    result.checkpoint = self.save_checkpoint(step)
                    break
        if bar is not None:
            bar.close()
        self.stop.restore()
        result.steps = step
        result.seconds = time.perf_counter() - t_start
        result.skipped = self._skipped(skipped_decode)
        if result.interrupted is None:
            self.save_final(result)
        if result.skipped:
            logger.warning("skipped samples: %s", ", ".join(f"{n} {r}" for r, n in result.skipped.items()))
        return result

    def _reduce(self, sums: torch.Tensor, counts: torch.Tensor) -> dict:
        """Mean losses over the step's micro-batches on every rank; samples summed."""
        both = torch.cat([sums, counts])
        if self.world > 1:
            t = both.to(self.device, torch.float32)
            torch.distributed.all_reduce(t)
            both = t.double().cpu()
        s, c = both[:5], both[5:]
        mean = [float(s[i] / c[i]) if c[i] > 0 else math.nan for i in range(3)]
        return {"loss": mean[0], "lm_loss": mean[1], "sim_loss": mean[2], "samples": float(s[3]),
                "router_queries": float(s[4])}

    def _stopping(self) -> bool:
        """Did any rank get SIGINT/SIGTERM? (Saving is collective, so all ranks must agree.)"""
        flag = self.stop.signal is not None
        if self.world > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    def _skipped(self, decode: dict[str, int]) -> dict:
        skipped = dict(self.report.skipped)
        keys = ["unreadable media"]
        counts = torch.tensor([float(decode.get(k, 0)) for k in keys])
        if self.world > 1:
            t = counts.to(self.device)
            torch.distributed.all_reduce(t)
            counts = t.cpu()
        for k, v in zip(keys, counts.tolist(), strict=True):
            if v:
                skipped[k] = skipped.get(k, 0) + int(v)
        return skipped

    def _log(self, step: int, epoch: int, stats: dict, lr: list, rate: float, elapsed: float) -> None:
        line = {"step": step, "epoch": epoch, "loss": stats["loss"], "lm_loss": stats["lm_loss"],
                "sim_loss": stats["sim_loss"], "router_queries": int(stats["router_queries"]), "lr": lr,
                "samples_per_s": rate, "elapsed_s": elapsed}
        self.out.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as f:
            f.write(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                for k, v in line.items()}) + "\n")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, step: int) -> str:
        """A resumable checkpoint (model's trained weights, optimizer, scheduler) under checkpoints/step<N>."""
        tag = f"step{step}"
        self.engine.save_checkpoint(str(self.ckpt_dir), tag=tag, exclude_frozen_parameters=True)
        if self.rank == 0:
            # Written last: its presence marks a complete checkpoint.
            _write_json(self.ckpt_dir / tag / STATE_NAME, {
                "step": step, "total_steps": self.total_steps, "samples": len(self.samples),
                "global_batch_size": self.cfg.global_batch_size, "world_size": self.world, "stage": self.cfg.stage,
            })
            self._prune()
        if self.world > 1:
            torch.distributed.barrier()
        logger.info("saved resumable checkpoint %s", self.ckpt_dir / tag)
        return str(self.ckpt_dir / tag)

    def _prune(self) -> None:
        tags = sorted(_complete_tags(self.ckpt_dir), key=lambda t: t[0])
        for _, path in tags[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(path, ignore_errors=True)

    def load_checkpoint(self) -> int:
        """Restore the latest complete checkpoint; returns its optimizer step."""
        tags = sorted(_complete_tags(self.ckpt_dir), key=lambda t: t[0])
        if not tags:
            raise CheckpointError(f"cannot resume: no complete checkpoint under {self.ckpt_dir}")
        step, path = tags[-1]
        state = json.loads((path / STATE_NAME).read_text())
        if state.get("samples") != len(self.samples) or state.get("global_batch_size") != self.cfg.global_batch_size:
            logger.warning("resuming %s with different data or batch size than it was saved with: the data order "
                           "will not continue exactly", path.name)
        with weights_only_torch_load():
            load_path, _ = self.engine.load_checkpoint(
                str(self.ckpt_dir), tag=path.name, load_module_strict=False, load_optimizer_states=True,
                load_lr_scheduler_states=True,
            )
        if load_path is None:
            raise CheckpointError(f"cannot resume: DeepSpeed could not load {path}")
        logger.info("resumed from %s (step %d)", path, step)
        return step

    def save_final(self, result: TrainResult) -> None:
        """The SALOVA checkpoint (rank 0), train_summary.json; resumable checkpoints are kept for reference."""
        if self.rank == 0:
            init = Path(self.cfg.init) if self.cfg.init else None
            save_llm = "llm" in self.trained or bool(init and (init / "llm" / "config.json").is_file())
            save_encoder = bool(self.trained & {"text_encoder", "vision_encoder"}) or bool(
                init and (init / "encoder" / "config.json").is_file())
            self.model.save_pretrained(self.out, save_encoder=save_encoder, save_llm=save_llm)
            _write_json(self.out / "train_summary.json", asdict(result))
        if self.world > 1:
            torch.distributed.barrier()

    def cleanup(self) -> None:
        self.stop.restore()
        if self.engine is not None and hasattr(self.engine, "destroy"):
            self.engine.destroy()
        # The process group stays: DeepSpeed keeps its own handle on it, and a second train() in the same
        # process (tests, notebooks) reuses it.


def _complete_tags(ckpt_dir: Path) -> list[tuple[int, Path]]:
    out = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            if p.is_dir() and p.name.startswith("step") and (p / STATE_NAME).is_file():
                try:
                    out.append((int(p.name[4:]), p))
                except ValueError:
                    continue
    return out


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)
