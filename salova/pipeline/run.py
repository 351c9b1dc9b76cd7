"""`salova index` as a library call: options, the run over a set of files, shards and their merge."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from salova.errors import UsageError, option_problem
from salova.pipeline.encode import EncodeSettings, FileOutcome, Indexer
from salova.pipeline.files import discover, shard_dir, shard_from_env
from salova.pipeline.library import Relocator, known_failure
from salova.runtime import Models, load_models
from salova.store.merge import merge_indexes
from salova.store.store import IndexStore
from salova.video import BACKENDS


@dataclass
class IndexOptions:
    index_dir: Path
    model: str | None = None  # SALOVA checkpoint: stores routing tokens and connector latents too
    encoder: str | None = None  # CLIP/SigLIP hub id or dir (default: the checkpoint's, or CLIP-L/14-336)
    max_segment_s: float = 60.0  # longer scenes are split into equal parts no longer than this
    fps: float = 1.0  # frames per second sampled for the encoder (paper: 1)
    batch_size: int = 16  # frames per encoder batch
    device: str = "auto"
    backend: str = "auto"  # decoder: auto, opencv, pyav, decord
    shard: tuple[int, int] | None = None  # (i, n): index every n-th file starting at i into its own shard
    shard_from_env: bool = True  # take (RANK, WORLD_SIZE) from a launcher when shard is None
    prune: bool = False  # drop index entries whose file no longer exists
    verify: bool = False  # unchanged means the same whole-file hash (reads every file); moves confirmed so too
    retry_failed: bool = False  # decode files that failed before even if they have not changed
    # connector latents on disk: fp16, or int8 (about half the size); fixed at creation (None: the index's, or fp16)
    latent_dtype: str | None = None
    # seconds to wait for another writer before failing ($SALOVA_LOCK_TIMEOUT)
    lock_timeout: float = field(default_factory=lambda: float(os.environ.get("SALOVA_LOCK_TIMEOUT", "10")))
    progress: bool = True

    def __post_init__(self):
        problems = []
        if self.max_segment_s <= 0:
            problems.append(("max_segment_s", f"must be > 0 seconds, got {self.max_segment_s}"))
        if not 0 < self.fps <= 30:
            problems.append(("fps", f"must be in (0, 30], got {self.fps}"))
        if self.batch_size < 1:
            problems.append(("batch_size", f"must be >= 1, got {self.batch_size}"))
        if self.latent_dtype not in (None, "fp16", "int8"):
            problems.append(("latent_dtype", f"must be fp16 or int8, got {self.latent_dtype!r}"))
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            problems.append(("shard", f"{self.shard[0]}/{self.shard[1]}: need 0 <= I < N"))
        if self.backend not in BACKENDS:
            problems.append(("backend", f"{self.backend!r}: expected one of {', '.join(BACKENDS)}"))
        if problems:
            raise UsageError(problems=problems)

    def encode_settings(self) -> EncodeSettings:
        return EncodeSettings(fps=self.fps, max_segment_s=self.max_segment_s, batch_size=self.batch_size,
                              backend=self.backend, verify=self.verify)


@dataclass
class IndexSummary:
    index: str
    indexed: int = 0
    updated: int = 0
    reindexed: int = 0  # unchanged files made again because --fps, --max-segment or the model changed
    moved: int = 0  # entries re-pointed at a file's new path (same content), no model work
    unchanged: int = 0
    failed: int = 0
    pruned: int = 0
    segments: int = 0
    seconds: float = 0.0
    shard: str | None = None
    not_retried: int = 0  # failed before and unchanged: not decoded again (--retry-failed does)
    failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # {"path", "warning"}: indexed only in part
    files: list[FileOutcome] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.files.append(outcome)
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.segments += outcome.segments
        if outcome.status == "failed":
            self.failures.append({"path": outcome.path, "error": outcome.error})
        if outcome.warning:
            self.warnings.append({"path": outcome.path, "warning": outcome.warning})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["files"] = [asdict(f) for f in self.files]
        return d

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def run_index(paths: list[str | Path], options: IndexOptions, models: Models | None = None) -> IndexSummary:
    """Index ``paths`` into ``options.index_dir`` (or its shard). Returns the summary; never raises for bad files."""
    t0 = time.perf_counter()
    files = discover(paths)
    shard = options.shard or (shard_from_env() if options.shard_from_env else None)
    target = options.index_dir
    if shard is not None:
        files = files[shard[0] :: shard[1]]
        target = shard_dir(options.index_dir, shard)
    summary = IndexSummary(index=str(target), shard=f"{shard[0]}/{shard[1]}" if shard else None)
    models = models or load_models(options.model, options.encoder, options.device)
    with IndexStore.open(
        target, writable=True, create=True, fingerprint=models.fingerprint(), lock_timeout=options.lock_timeout,
        latent_dtype=options.latent_dtype or "fp16",
    ) as store:
        if options.latent_dtype is not None and options.latent_dtype != store.latent_dtype:
            raise option_problem("latent_dtype", f"{options.latent_dtype}: the index at {target} stores "
                                 f"{store.latent_dtype} latents, fixed when it was created; leave the option out, "
                                 "or use another --index")
        relocator = Relocator(store, verify=options.verify)  # before pruning: a moved file keeps its entry
        indexer = Indexer(models, store, options.encode_settings(), shard=summary.shard)
        show = options.progress
        with (
            tqdm(total=len(files), desc="videos", unit="video", disable=not show, position=0) as files_bar,
            tqdm(desc="frames", unit="frame", disable=not show, position=1, leave=False) as frames_bar,
        ):
            for path in files:
                outcome = relocator.relocate(path)
                if outcome is None and (outcome := known_failure(store, path, options.retry_failed)):
                    summary.not_retried += 1
                summary.add(outcome or indexer.index_file(path, frames_bar if show else None))
                files_bar.update(1)
        if options.prune:
            gone = [v.path for v in store.videos() if not Path(v.path).exists()]
            summary.pruned = store.remove_videos(gone) if gone else 0
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def merge_shards(index_dir: Path, remove: bool = True):
    """Combine ``index_dir/shards/*`` into ``index_dir``; the shard folders are removed afterwards."""
    import shutil

    shards = sorted(p for p in (index_dir / "shards").glob("*-of-*") if p.is_dir())
    if not shards:
        raise UsageError(f"no shards to merge under {index_dir / 'shards'} (index with a shard first)")
    summary = merge_indexes(shards, index_dir)
    if remove:
        shutil.rmtree(index_dir / "shards")
    return summary
