"""Encoding beside decoding: a worker thread, near-duplicate frame reuse.

``EncodeWorker`` runs the scan's consumer (encode a batch, close a scene) on its own thread, fed through a
bounded queue in the order the scanner produced the events, so the result is the one a single thread gives
while decoding and scene detection go on (OpenCV and torch release the GIL). ``FrameDedup`` gives a 1-FPS
frame that is nearly identical to the last encoded one (a static scene) that frame's features instead of
encoding it again.

Notation: b frames in a batch, k frames encoded, h, w frame size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import suppress

import numpy as np
import torch

from salova.models.encoder import FrameFeatures

# Width of the grey thumbnail two frames are compared on (height follows the aspect ratio).
_THUMB_WIDTH = 64


def _thumb(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [h, w, 3] -> grey float32 [t_h, 64], area-averaged (compression noise averages out)."""
    import cv2

    h, w = rgb.shape[:2]
    size = (_THUMB_WIDTH, max(1, round(_THUMB_WIDTH * h / w)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32).mean(axis=2)


class FrameDedup:
    """Encodes batches of frames, reusing the last encoded frame's features for near-duplicates.

    A frame is a near-duplicate when the mean absolute difference of its grey 64-px-wide thumbnail from
    the last *encoded* frame's (0-255 scale) is below ``threshold``; comparing with the encoded frame, not
    the previous one, keeps a slow drift from being skipped for ever. ``threshold <= 0`` encodes every frame.
    """

    def __init__(self, encode: Callable[[np.ndarray], FrameFeatures], threshold: float):
        self.encode = encode
        self.threshold = threshold
        self.frames = 0  # frames seen
        self.reused = 0  # of which got an earlier frame's features
        self._ref_thumb: np.ndarray | None = None
        self._ref: FrameFeatures | None = None  # the last encoded frame's features, one row each

    def __call__(self, rgb: list[np.ndarray]) -> FrameFeatures:
        """RGB uint8 frames (b of them) -> their features, b rows, in order."""
        self.frames += len(rgb)
        if self.threshold <= 0:
            return self.encode(np.stack(rgb))
        keep: list[int] = []  # frames to encode
        src: list[int] = []  # per frame: row in [previous reference, encoded...]
        ref_thumb, ref_row = self._ref_thumb, 0
        for i, frame in enumerate(rgb):
            thumb = _thumb(frame)
            if ref_thumb is not None and float(np.abs(thumb - ref_thumb).mean()) < self.threshold:
                src.append(ref_row)
                continue
            keep.append(i)
            ref_thumb, ref_row = thumb, len(keep)  # row 0 is the previous batch's reference
            src.append(ref_row)
        self.reused += len(rgb) - len(keep)
        parts = [self._ref] if self._ref is not None else []
        if keep:
            parts.append(self.encode(np.stack([rgb[i] for i in keep])))
        offset = 0 if self._ref is not None else 1  # no reference yet: encoded rows start at 0
        index = torch.tensor([r - offset for r in src])  # [b]
        feats = FrameFeatures(*(torch.cat([getattr(p, f) for p in parts])[index] for f in ("patches", "cls", "joint")))
        self._ref_thumb = ref_thumb  # the last frame's features are the reference's
        self._ref = FrameFeatures(feats.patches[-1:], feats.cls[-1:], feats.joint[-1:])
        return feats


class EncodeWorker:
    """Runs ``handle(item)`` for every submitted item, in order, on one thread (inference mode).

    The queue holds at most ``depth`` items, so a slow encoder slows decoding instead of growing memory.
    An exception in ``handle`` stops the worker and is raised again by the next ``submit`` or by ``finish``.
    """

    def __init__(self, handle: Callable[[object], None], depth: int = 2):
        self.handle = handle
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="salova-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                item = self._queue.get()
                if item is None or self._stop.is_set():
                    return
                try:
                    self.handle(item)
                except BaseException as exc:  # raised again on the submitting thread
                    self._error = exc
                    return

    def submit(self, item: object) -> None:
        while True:
            self._raise()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Wait for every submitted item; raise the worker's exception if it had one."""
        self.submit(None)
        self._thread.join()
        self._raise()

    def stop(self) -> None:
        """Abandon the queued items and end the thread (after an error on the submitting side)."""
        self._stop.set()
        while self._thread.is_alive():
            with suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            with suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(timeout=0.05)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
