"""One video -> its segments: one decode pass, scene cuts, 1-FPS features, connector compression.

``VideoScanner`` decodes once; every frame feeds the scene detector and 1-FPS frames feed the encoder in
batches. When a cut closes a scene, ``SegmentCutter`` (the one scene -> segment rule) cuts it into segments,
each is compressed by ``Salova.compress`` when a trained checkpoint is loaded, and the frames' features are
released: memory does not grow with video length. The video's segments are committed in one atomic step.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from salova.defaults import ENCODE_BATCH
from salova.errors import SalovaError, VideoOpenError
from salova.models.zero_shot import segment_embedding
from salova.pipeline.buffers import FrameBuffer, LatentSpill
from salova.pipeline.files import content_hash, full_hash, is_unchanged, settings_differ, settings_json
from salova.pipeline.outcome import FileOutcome
from salova.pipeline.overlap import EncodeWorker, FrameDedup
from salova.runtime import Models
from salova.store.records import SegmentData
from salova.store.store import IndexStore
from salova.video import SampledFrame, SceneCut, Segment, SegmentCutter, VideoScanner

logger = logging.getLogger(__name__)


@dataclass
class EncodeSettings:
    """What shapes a video's segments and features (``IndexOptions`` carries them from the command)."""

    fps: float = 1.0  # frames per second sampled for the encoder (paper: 1)
    max_segment_s: float = 60.0  # longer scenes are split into equal parts no longer than this
    batch_size: int | None = None  # frames per encoder batch (None: by device, ENCODE_BATCH)
    backend: str = "auto"  # decoder: auto, sparse, opencv, pyav, decord
    verify: bool = False  # unchanged means the same whole-file hash, not size + mtime / sampled hash
    overlap: bool = True  # encode on a second thread while the next frames decode (same result either way)
    # a 1-FPS frame whose 64-px grey thumbnail differs from the last encoded one by less than this (mean abs,
    # 0-255) reuses its features (static scenes); 0 encodes every frame
    dedup_threshold: float = 1.0


class Indexer:
    """Indexes files into an open, writable IndexStore with loaded models."""

    def __init__(self, models: Models, store: IndexStore, settings: EncodeSettings, shard: str | None = None):
        self.models = models
        self.store = store
        self.settings = settings
        self.shard = shard  # "i/N" recorded in videos.shard
        self.frames_reused = 0  # 1-FPS frames that took a near-identical earlier frame's features
        self.batch_size = settings.batch_size or ENCODE_BATCH.get(models.device.type, ENCODE_BATCH["cpu"])
        fp = models.fingerprint()
        self.settings_json = settings_json(settings.fps, settings.max_segment_s, fp.encoder, fp.digest)

    def index_file(self, path: Path, frames_bar: tqdm | None = None) -> FileOutcome:
        t0 = time.perf_counter()
        spath = str(path)
        old = self.store.get_video(spath)
        try:
            st = path.stat()
            same_file = is_unchanged(old, path, st, self.settings.verify)
            changed_settings = settings_differ(old, self.settings_json) if same_file else []
            if same_file and not changed_settings:
                return FileOutcome(spath, "unchanged", old.num_segments, time.perf_counter() - t0)
            if changed_settings:
                logger.info("%s: re-indexing, made with other %s", path.name, ", ".join(changed_settings))
            chash = content_hash(path, st.st_size)
        except OSError as exc:
            return self._fail(spath, None, f"{path.name}: cannot read: {exc.strerror or exc}", t0)
        spill = LatentSpill() if self.models.trained else None
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
                warning=" ".join("; ".join(result.warnings).split()) or None,
                gaps=json.dumps([list(g) for g in result.gaps]) if result.gaps else None,
                settings=self.settings_json,
                full_hash=full_hash(path),
            )
        finally:
            if spill is not None:
                spill.close()
        status = "updated" if old is not None and old.status == "indexed" else "indexed"
        if same_file:
            status = "reindexed"
        warning = " ".join("; ".join(result.warnings).split()) or None  # one line
        return FileOutcome(spath, status, len(segments), time.perf_counter() - t0, warning=warning)

    def _fail(self, path: str, state: tuple[int, int, str] | None, error: str, t0: float) -> FileOutcome:
        error = " ".join(error.split())  # one line
        if state is not None:
            self.store.put_failure(
                path=path, size=state[0], mtime_ns=state[1], content_hash=state[2], error=error, shard=self.shard,
                settings=self.settings_json,
            )
        logger.info("failed: %s", error)  # the summary reports failures; -v shows them as they happen
        return FileOutcome(path, "failed", 0, time.perf_counter() - t0, error)

    def scan(self, path: Path, frames_bar: tqdm | None = None, spill: LatentSpill | None = None):
        """One decode pass -> (VideoInfo, ScanResult, [SegmentData]); latents go to ``spill`` (a checkpoint).

        The scanner (decode thread + detector) runs here; encoding and closing scenes run in ``_consume``,
        on an ``EncodeWorker`` thread when ``settings.overlap``, in the same order either way.
        """
        settings, models = self.settings, self.models
        scanner = VideoScanner(path, sample_fps=settings.fps, backend=settings.backend)
        info = scanner.info
        if frames_bar is not None:
            scanner.on_progress = _progress(frames_bar, info.fps)
            frames_bar.reset(total=info.num_frames or None)
            frames_bar.set_description(_short(path.name))
        buffer = FrameBuffer(keep_patches=models.trained)
        cutter = SegmentCutter(info.fps, settings.max_segment_s)
        encode = FrameDedup(models.encoder.encode_frames, settings.dedup_threshold)
        segments: list[SegmentData] = []

        def consume(item: tuple) -> None:
            kind, value = item
            if kind == "frames":
                buffer.add(value, encode([f.rgb for f in value]))
                return
            frames = buffer.take_before(value)
            if kind == "end":
                pairs, extend_to = cutter.finish(value, frames["index"])
            else:
                pairs, extend_to = cutter.close_scene(value, frames["index"]), None
            segments.extend(self._segment(seg, frames, rows, buffer, spill) for seg, rows in pairs)
            buffer.release()
            if extend_to is not None:  # trailing frames without a sample extend the last segment
                segments[-1].end_frame, segments[-1].end_s = extend_to, extend_to / info.fps

        worker = EncodeWorker(consume) if settings.overlap else None
        submit = worker.submit if worker is not None else _inline(consume)
        pending: list[SampledFrame] = []
        try:
            for event in scanner:
                if isinstance(event, SampledFrame):
                    pending.append(event)
                    if len(pending) >= self.batch_size:
                        submit(("frames", pending))
                        pending = []
                elif isinstance(event, SceneCut):
                    if pending:
                        submit(("frames", pending))
                        pending = []
                    submit(("cut", event.frame_index))
            if pending:
                submit(("frames", pending))
            result = scanner.result
            submit(("end", max(result.end_frame, cutter.scene_start + 1)))
            if worker is not None:
                worker.finish()
                worker = None
        finally:
            if worker is not None:
                worker.stop()
            buffer.close()
        self.frames_reused += encode.reused
        if not segments:
            raise VideoOpenError(f"{path.name}: no frames could be decoded")
        presentation_times(segments, result)
        latents = spill.view() if spill is not None else None
        if latents is not None:
            for seg in segments:
                seg.latents = latents[seg.latents]  # the spill row -> a file-backed [L, d] view
        return info, result, segments

    def _segment(
        self, seg: Segment, frames: dict, rows: np.ndarray, buffer: FrameBuffer, spill: LatentSpill | None
    ) -> SegmentData:
        joint = frames["joint"][rows]
        out = SegmentData(
            idx=seg.index,
            start_s=seg.start_s,
            end_s=seg.end_s,
            start_frame=seg.start_frame,
            end_frame=seg.end_frame,
            joint=segment_embedding(joint),
            frame_times=frames["times"][rows],
            frame_joint=joint,
        )
        if self.models.trained:
            # a segment's frames are consecutive rows of the patch file
            patches = buffer.read_patches(frames["first_row"] + int(rows[0]), len(rows))  # [f, p, d] fp16
            routing, latents = self.models.salova.compress(
                torch.from_numpy(patches.copy())[None], torch.from_numpy(frames["cls"][rows])[None]
            )  # [1, d], [1, l, d]
            # a copy: a view would keep the connector's whole [1, 1+l, d] float32 output alive per segment
            out.routing = routing[0].float().cpu().numpy().copy()
            out.latents = spill.add(latents[0].to(torch.float16).cpu().numpy())  # a row number until the scan ends
        return out


def presentation_times(segments: list[SegmentData], result) -> None:
    """Segment bounds at scene cuts and at the end take the frames' presentation times, not ``frame / fps``:
    they differ in a variable-frame-rate file (by more than the 0.5 ms tolerance; constant-rate files keep
    ``frame / fps`` exactly). Splits inside a scene stay at ``frame / fps``."""
    pts = dict(zip(result.cuts, result.cut_times_s, strict=True))
    pts[result.end_frame] = result.duration_s
    for seg in segments:
        for frame_attr, time_attr in (("start_frame", "start_s"), ("end_frame", "end_s")):
            t = pts.get(getattr(seg, frame_attr))
            if t is not None and abs(t - getattr(seg, time_attr)) > 5e-4:
                setattr(seg, time_attr, t)


def _inline(consume):
    """``consume`` under inference mode on the calling thread (``overlap=False``)."""

    def submit(item: tuple) -> None:
        with torch.inference_mode():
            consume(item)

    return submit


def _progress(bar: tqdm, video_fps: float):
    """``on_progress`` for the frames bar: frames, plus seconds of video per second of wall time."""
    t0 = time.perf_counter()
    done = 0

    def update(n: int) -> None:
        nonlocal done
        done += n
        bar.update(n)
        elapsed = time.perf_counter() - t0
        if video_fps > 0 and elapsed > 0:
            bar.set_postfix_str(f"{done / video_fps / elapsed:.1f} video-s/s", refresh=False)

    return update


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
