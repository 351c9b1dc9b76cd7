"""`salova index --dry-run`: how long indexing would take, from the files' durations and a measured speed.

The speed is measured here, on this machine: the scanner (decode + scene detection + 1-FPS sampling) over
the first seconds of the first file that needs indexing, and the encoder on a few of its frames. Nothing is
written to the index.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from salova.errors import SalovaError
from salova.pipeline.run import IndexOptions, _recorded_models

_PROBE_SECONDS = 10.0  # of video scanned to measure decode speed
_ENCODE_FRAMES = 8  # frames encoded to measure the encoder (after one warm-up batch)


@dataclass
class IndexEstimate:
    files: int  # files that need indexing
    unchanged: int  # already indexed and unchanged
    video_s: float  # their total duration
    scan_s_per_video_s: float  # decode + detect + sample, seconds per second of video
    encode_s_per_frame: float  # encoder, seconds per 1-FPS frame
    encoder: str
    estimate_s: float  # wall time for all of it, with encoding beside decoding
    unreadable: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_index(paths: list[str | Path], options: IndexOptions) -> IndexEstimate:
    """Durations of the files that need indexing, and the time indexing them would take here."""
    import numpy as np

    from salova.pipeline.files import discover, is_unchanged
    from salova.runtime import load_models
    from salova.store.store import IndexStore
    from salova.video import SampledFrame, VideoScanner, probe_video

    files = discover(paths)
    recorded = _recorded_models(options.index_dir)
    todo, unchanged, unreadable, total = [], 0, [], 0.0
    store = IndexStore.open(options.index_dir) if recorded is not None else None
    try:
        for path in files:
            if store is not None and is_unchanged(store.get_video(str(path)), path, path.stat()):
                unchanged += 1
                continue
            try:
                _, probe = probe_video(path)
            except SalovaError as exc:
                unreadable.append(str(exc))
                continue
            todo.append(path)
            total += probe.duration_s
    finally:
        if store is not None:
            store.close()
    if not todo:
        return IndexEstimate(0, unchanged, 0.0, 0.0, 0.0, "", 0.0, unreadable)

    scanner = VideoScanner(todo[0], sample_fps=options.fps, backend=options.backend)
    frames, t0, scanned = [], time.perf_counter(), 0.0
    for event in scanner:
        if isinstance(event, SampledFrame):
            frames.append(event.rgb)
            scanned = event.time_s
            if scanned >= _PROBE_SECONDS:
                break
    scan_rate = (time.perf_counter() - t0) / max(scanned, 1.0 / options.fps)

    encoder = options.encoder
    if encoder is None and options.model is None and recorded is not None and recorded.checkpoint is None:
        encoder = recorded.encoder
    models = load_models(options.model, encoder, options.device)
    batch = np.stack([frames[i % len(frames)] for i in range(_ENCODE_FRAMES)])
    import torch

    with torch.inference_mode():
        models.encoder.encode_frames(batch[:2])  # warm-up
        t0 = time.perf_counter()
        models.encoder.encode_frames(batch)
    per_frame = (time.perf_counter() - t0) / len(batch)
    scan_s, encode_s = total * scan_rate, total * options.fps * per_frame
    # Encoding runs beside decoding: the slower stage sets the pace when there are cores for both,
    # and on 2 cores or fewer they share them.
    wall = max(scan_s, encode_s) if (os.cpu_count() or 1) > 2 else scan_s + encode_s
    return IndexEstimate(len(todo), unchanged, round(total, 1), round(scan_rate, 4), round(per_frame, 4),
                         models.encoder.name, round(wall, 3), unreadable)
