"""Video input: one decode pass per file gives scene cuts and 1-FPS frames (``VideoScanner``)."""

from salova.video.decode import BACKENDS, SampledFrame, VideoInfo, probe_video
from salova.video.scenes import (
    AdaptiveDetectorConfig,
    ScanResult,
    SceneCut,
    Segment,
    VideoScanner,
    split_segments,
)

__all__ = [
    "BACKENDS",
    "AdaptiveDetectorConfig",
    "SampledFrame",
    "ScanResult",
    "SceneCut",
    "Segment",
    "VideoInfo",
    "VideoScanner",
    "probe_video",
    "split_segments",
]
