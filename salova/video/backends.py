"""Which decoder reads a file: the backends by name, and the order ``auto`` tries them in."""

from __future__ import annotations

import logging
import os

from salova.defaults import VIDEO_BACKENDS
from salova.errors import VideoOpenError
from salova.video.decode import DecordSource, FrameSource, OpenCVSource, PyAVSource, _Probe, probe_video
from salova.video.sparse import SparseSource

logger = logging.getLogger("salova.video")

SOURCES: dict[str, type[FrameSource]] = {
    "sparse": SparseSource, "opencv": OpenCVSource, "pyav": PyAVSource, "decord": DecordSource,
}
# sparse: the CLI's detector frames at a fraction of the conversion work (8-bit 4:2:0 video); OpenCV: every
# other format exactly as the CLI reads it; PyAV: what OpenCV cannot open.
AUTO_ORDER = ("sparse", "opencv", "pyav")


def open_frames(
    path: str | os.PathLike, backend: str = "auto", downscale: float | None = None,
) -> tuple[FrameSource, _Probe]:
    """Probe ``path``, open it with ``backend`` and decode its first frame.

    ``"auto"`` tries ``AUTO_ORDER``. ``downscale``: the detector's factor (None: the CLI's). Raises
    ``VideoOpenError`` when the file is unusable.
    """
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"backend must be one of {VIDEO_BACKENDS}, not {backend!r}")
    path, probe = probe_video(path)
    order = AUTO_ORDER if backend == "auto" else (backend,)
    error: VideoOpenError | None = None
    for name in order:
        source = SOURCES[name](path, probe, downscale)
        try:
            source.open()
        except VideoOpenError as err:
            if error is None or name == "opencv":  # sparse's refusal is not the file's problem
                error = err
            logger.debug("%s: backend %s failed: %s", path.name, name, err)
            continue
        return source, probe
    assert error is not None
    raise error
