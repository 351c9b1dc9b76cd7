"""`salova index`: turn video files into index entries, incrementally, one decode pass per video.

Per video: VideoScanner decodes once; every frame feeds the scene detector and 1-FPS frames feed the
encoder in batches. As soon as a scene is closed by a cut, its frames are split into segments
(scenes longer than ``max_segment_s`` in equal parts), compressed by the ST-Connector when a trained
checkpoint is loaded, and the frames' features are released: memory does not grow with video length
(pending patch features of a long scene are spilled to a temporary file). The video's segments are
committed to the store in one atomic step at the end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from salova.errors import SalovaError, UsageError, VideoOpenError
from salova.models.zero_shot import segment_embedding
from salova.runtime import Models, load_models
from salova.store.records import SegmentData
from salova.store.store import IndexStore
from salova.video import SampledFrame, SceneCut, VideoScanner, split_segments

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mkv",
        ".mov",
        ".avi",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".ogv",
        ".vob",
        ".mxf",
    }
)
HASH_CHUNK = 1 << 20  # content hash: size + head, middle and tail MiB (cheap on multi-GB files)


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
    latent_dtype: str = "fp16"  # connector latents on disk: fp16, or int8 (about half the size); new index only
    # seconds to wait for another writer before failing ($SALOVA_LOCK_TIMEOUT)
    lock_timeout: float = field(default_factory=lambda: float(os.environ.get("SALOVA_LOCK_TIMEOUT", "10")))
    progress: bool = True

    def __post_init__(self):
        problems = []
        if self.max_segment_s <= 0:
            problems.append(f"--max-segment must be > 0 seconds, got {self.max_segment_s}")
        if not 0 < self.fps <= 30:
            problems.append(f"--fps must be in (0, 30], got {self.fps}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.latent_dtype not in ("fp16", "int8"):
            problems.append(f"--latent-dtype must be fp16 or int8, got {self.latent_dtype!r}")
        if self.shard is not None and not 0 <= self.shard[0] < self.shard[1]:
            problems.append(f"--shard {self.shard[0]}/{self.shard[1]}: need 0 <= I < N")
        if problems:
            raise UsageError("; ".join(problems))


@dataclass
class FileOutcome:
    path: str
    status: str  # indexed | updated | unchanged | failed
    segments: int = 0
    seconds: float = 0.0
    error: str | None = None
    warning: str | None = None  # indexed, but not all of it: e.g. decoding stopped early (truncated/corrupt file)


@dataclass
class IndexSummary:
    index: str
    indexed: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    pruned: int = 0
    segments: int = 0
    seconds: float = 0.0
    shard: str | None = None
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


# ---------------------------------------------------------------------------------------- files
def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Video files under ``paths`` (files as given; folders recursively by extension), sorted, unique.

    Symlinked folders are followed once (loops are cut); a missing argument is a usage error.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise UsageError(f"{raw}: no such file or directory")
        if p.is_file():
            found.setdefault(str(p.resolve()), p.resolve())
            continue
        seen_dirs: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(p, followlinks=True):
            st = os.stat(root)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:  # a symlink loop or a folder reached twice
                dirs[:] = []
                continue
            seen_dirs.add(key)
            dirs.sort()
            for name in sorted(files):
                if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    f = Path(root, name)
                    if f.is_file():
                        found.setdefault(str(f.resolve()), f.resolve())
    return sorted(found.values())


def content_hash(path: Path, size: int) -> str:
    """sha256 over the size and the first, middle and last MiB: detects edits without reading GBs."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - HASH_CHUNK // 2), max(0, size - HASH_CHUNK)}):
            f.seek(offset)
            h.update(f.read(HASH_CHUNK))
    return h.hexdigest()[:32]


def is_unchanged(rec, path: Path, st: os.stat_result) -> bool:
    """An indexed record still describes the file: same size, and same mtime or same content hash."""
    if rec is None or rec.status != "indexed" or rec.size != st.st_size:
        return False
    return rec.mtime_ns == st.st_mtime_ns or rec.content_hash == content_hash(path, st.st_size)


def shard_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) from a torchrun/deepspeed launcher, if set and > 1."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world > 1 else None


def shard_dir(index_dir: Path, shard: tuple[int, int]) -> Path:
    return index_dir / "shards" / f"{shard[0]}-of-{shard[1]}"


# ---------------------------------------------------------------------------------------- frames
class _FrameBuffer:
    """Encoded 1-FPS frames awaiting their scene's end.

    Patch features (the large part: p x d per frame) live in a temporary file and are read back one
    segment at a time, so RAM does not grow with scene or video length.
    """

    def __init__(self, keep_patches: bool):
        self.keep_patches = keep_patches
        self.index: list[int] = []
        self.times: list[float] = []
        self.joint: list[np.ndarray] = []
        self.cls: list[np.ndarray] = []
        self.joint_width = 0
        # closed by close(); a context manager cannot span the scan loop
        self._file = tempfile.TemporaryFile(prefix="salova-patches-") if keep_patches else None  # noqa: SIM115
        self._row_shape: tuple[int, ...] = ()
        self._start = 0  # file row of the first buffered frame
        self._rows = 0  # rows in the file

    def add(self, frames: list[SampledFrame], feats) -> None:
        self.index += [f.frame_index for f in frames]
        self.times += [f.time_s for f in frames]
        joint = feats.joint.float().cpu().numpy()
        self.joint_width = joint.shape[1]
        self.joint += list(joint)
        if self.keep_patches:
            self.cls += list(feats.cls.float().cpu().numpy())
            patches = np.ascontiguousarray(feats.patches.to(torch.float16).cpu().numpy())  # [b, p, d]
            self._row_shape = patches.shape[1:]
            os.pwrite(self._file.fileno(), patches.tobytes(), self._rows * patches[0].nbytes)
            self._rows += len(patches)

    def __len__(self) -> int:
        return len(self.index)

    def take_before(self, frame: int) -> dict:
        """Remove and return the buffered frames with frame_index < frame (patches stay on disk until
        ``release``; read them with ``read_patches``)."""
        n = sum(1 for i in self.index if i < frame)
        out = {
            "index": self.index[:n],
            "times": np.asarray(self.times[:n], dtype=np.float64),
            "joint": np.asarray(self.joint[:n], dtype=np.float32).reshape(n, self.joint_width),
            "first_row": self._start,
        }
        self.index, self.times, self.joint = self.index[n:], self.times[n:], self.joint[n:]
        if self.keep_patches:
            out["cls"] = np.asarray(self.cls[:n], dtype=np.float32)
            self.cls = self.cls[n:]
            self._start += n
        return out

    def read_patches(self, first: int, count: int) -> np.ndarray:
        """Rows first..first+count-1 of the patch file -> [count, p, d] float16."""
        row_bytes = int(np.prod(self._row_shape)) * 2
        data = os.pread(self._file.fileno(), count * row_bytes, first * row_bytes)
        return np.frombuffer(data, dtype=np.float16).reshape(count, *self._row_shape)

    def release(self) -> None:
        """Drop patch rows no buffered frame needs any more (all of them once the buffer is empty)."""
        if self.keep_patches and not self.index:
            self._file.truncate(0)
            self._start = self._rows = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class _LatentSpill:
    """Connector latents of a video's finished segments, in a temporary file until the video's commit."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="salova-latents-")  # noqa: SIM115 (closed by close())
        self._shape: tuple[int, ...] = ()
        self._rows = 0

    def add(self, latents: np.ndarray) -> int:
        latents = np.ascontiguousarray(latents, dtype=np.float16)
        self._shape = latents.shape
        os.pwrite(self._file.fileno(), latents.tobytes(), self._rows * latents.nbytes)
        self._rows += 1
        return self._rows - 1

    def view(self) -> np.ndarray | None:
        """All rows as a read-only memory map [n, L, d] (file-backed: pages are not anonymous memory)."""
        if not self._rows:
            return None
        return np.memmap(self._file, dtype=np.float16, mode="r", shape=(self._rows, *self._shape))

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------- indexer
class Indexer:
    """Indexes files into an open, writable IndexStore with loaded models."""

    def __init__(self, models: Models, store: IndexStore, options: IndexOptions, shard: str | None = None):
        self.models = models
        self.store = store
        self.options = options
        self.shard = shard  # "i/N" recorded in videos.shard

    def index_file(self, path: Path, frames_bar: tqdm | None = None) -> FileOutcome:
        t0 = time.perf_counter()
        spath = str(path)
        old = self.store.get_video(spath)
        try:
            st = path.stat()
            if is_unchanged(old, path, st):
                return FileOutcome(spath, "unchanged", old.num_segments, time.perf_counter() - t0)
            chash = content_hash(path, st.st_size)
        except OSError as exc:
            return self._fail(spath, None, f"{path.name}: cannot read: {exc.strerror or exc}", t0)
        spill = _LatentSpill() if self.models.trained else None
        try:
            try:
                info, result, segments = self.scan(path, frames_bar, spill)
            except SalovaError as exc:
                return self._fail(spath, (st.st_size, st.st_mtime_ns, chash), str(exc), t0)
            except (RuntimeError, ValueError, OSError, MemoryError) as exc:  # decoder/library failure on this file
                logger.debug("indexing %s failed", spath, exc_info=True)
                return self._fail(spath, (st.st_size, st.st_mtime_ns, chash), f"{path.name}: {exc}", t0)
            self.store.put_video(
                path=spath,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                content_hash=chash,
                duration_s=result.duration_s,
                fps=info.fps,
                num_frames=result.end_frame,
                segments=segments,
                shard=self.shard,
            )
        finally:
            if spill is not None:
                spill.close()
        status = "updated" if old is not None and old.status == "indexed" else "indexed"
        warning = " ".join("; ".join(result.warnings).split()) or None  # one line
        return FileOutcome(spath, status, len(segments), time.perf_counter() - t0, warning=warning)

    def _fail(self, path: str, state: tuple[int, int, str] | None, error: str, t0: float) -> FileOutcome:
        error = " ".join(error.split())  # one line
        if state is not None:
            self.store.put_failure(
                path=path, size=state[0], mtime_ns=state[1], content_hash=state[2], error=error, shard=self.shard
            )
        logger.info("failed: %s", error)  # the summary reports failures; -v shows them as they happen
        return FileOutcome(path, "failed", 0, time.perf_counter() - t0, error)

    @torch.inference_mode()
    def scan(self, path: Path, frames_bar: tqdm | None = None, spill: _LatentSpill | None = None):
        """One decode pass -> (VideoInfo, ScanResult, [SegmentData]); latents go to ``spill`` (a checkpoint)."""
        opts, models = self.options, self.models
        trained = models.trained
        on_progress = frames_bar.update if frames_bar is not None else None
        scanner = VideoScanner(path, sample_fps=opts.fps, backend=opts.backend, on_progress=on_progress)
        info = scanner.info
        if frames_bar is not None:
            frames_bar.reset(total=info.num_frames or None)
            frames_bar.set_description(_short(path.name))
        buffer = _FrameBuffer(keep_patches=trained)
        pending: list[SampledFrame] = []
        segments: list[SegmentData] = []
        state = {"scene_start": 0, "carry": None, "spill": spill}

        def flush():
            if pending:
                buffer.add(pending, models.encoder.encode_frames(np.stack([f.rgb for f in pending])))
                pending.clear()

        try:
            for event in scanner:
                if isinstance(event, SampledFrame):
                    pending.append(event)
                    if len(pending) >= opts.batch_size:
                        flush()
                elif isinstance(event, SceneCut):
                    flush()
                    self._close_scene(buffer, state, event.frame_index, info.fps, segments)
            flush()
            result = scanner.result
            self._close_scene(
                buffer, state, max(result.end_frame, state["scene_start"] + 1), info.fps, segments, final=True
            )
        finally:
            buffer.close()
        if not segments:
            raise VideoOpenError(f"{path.name}: no frames could be decoded")
        latents = spill.view() if spill is not None else None
        for i, seg in enumerate(segments):
            seg.idx = i
            if latents is not None:
                seg.latents = latents[seg.latents]  # the spill row -> a file-backed [L, d] view
        return info, result, segments

    def _close_scene(
        self, buffer: _FrameBuffer, state: dict, end: int, fps: float, out: list[SegmentData], final: bool = False
    ) -> None:
        """Split the scene [scene_start, end) into segments and compress them."""
        start = state["scene_start"]
        if end <= start:
            return
        frames = buffer.take_before(end)
        state["scene_start"] = end
        parts = split_segments([], end - start, fps, self.options.max_segment_s)
        index = np.asarray(frames["index"], dtype=np.int64)
        for part in parts:
            s, e = start + part.start_frame, start + part.end_frame
            sel = np.nonzero((index >= s) & (index < e))[0]
            if len(sel) == 0:  # shorter than one sample interval: merged into its neighbour
                if state["carry"] is None:
                    state["carry"] = s
                continue
            if state["carry"] is not None:
                s, state["carry"] = state["carry"], None
            out.append(self._segment(s, e, fps, frames, sel, buffer, state["spill"]))
        buffer.release()
        if final and state["carry"] is not None and out:
            last = out[-1]  # trailing frames without a sample extend the last segment
            last.end_frame, last.end_s = end, end / fps

    def _segment(
        self, s: int, e: int, fps: float, frames: dict, sel: np.ndarray, buffer: _FrameBuffer,
        spill: _LatentSpill | None,
    ) -> SegmentData:
        joint = frames["joint"][sel]
        seg = SegmentData(
            idx=0,
            start_s=s / fps,
            end_s=e / fps,
            start_frame=s,
            end_frame=e,
            joint=segment_embedding(joint),
            frame_times=frames["times"][sel],
            frame_joint=joint,
        )
        if self.models.trained:
            conn = self.models.salova.connector
            dev, dtype = self.models.device, next(conn.parameters()).dtype
            # a segment's frames are consecutive rows of the patch file
            rows = buffer.read_patches(frames["first_row"] + int(sel[0]), len(sel))  # [f, p, d] fp16
            patches = torch.from_numpy(rows.copy()).to(dev, dtype)[None]
            cls_ = torch.from_numpy(frames["cls"][sel]).to(dev, dtype)[None]
            mask = torch.ones(1, len(sel), dtype=torch.bool, device=dev)
            routing, latents = conn(patches, mask, cls_)  # [1, d], [1, l, d]
            # a copy: a view would keep the connector's whole [1, 1+l, d] float32 output alive per segment
            seg.routing = routing[0].float().cpu().numpy().copy()
            seg.latents = spill.add(latents[0].to(torch.float16).cpu().numpy())  # a row number until scan ends
        return seg


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# ---------------------------------------------------------------------------------------- entry points
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
        latent_dtype=options.latent_dtype,
    ) as store:
        if options.prune:
            gone = [v.path for v in store.videos() if not Path(v.path).exists()]
            summary.pruned = store.remove_videos(gone) if gone else 0
        indexer = Indexer(models, store, options, shard=summary.shard)
        show = options.progress
        with (
            tqdm(total=len(files), desc="videos", unit="video", disable=not show, position=0) as files_bar,
            tqdm(desc="frames", unit="frame", disable=not show, position=1, leave=False) as frames_bar,
        ):
            for path in files:
                summary.add(indexer.index_file(path, frames_bar if show else None))
                files_bar.update(1)
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def merge_shards(index_dir: Path, remove: bool = True):
    """Combine ``index_dir/shards/*`` into ``index_dir``; the shard folders are removed afterwards."""
    import shutil

    shards = sorted(p for p in (index_dir / "shards").glob("*-of-*") if p.is_dir())
    if not shards:
        raise UsageError(f"no shards to merge under {index_dir / 'shards'} (run `salova index --shard I/N` first)")
    summary = IndexStore.merge(shards, index_dir)
    if remove:
        shutil.rmtree(index_dir / "shards")
    return summary
