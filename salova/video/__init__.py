"""Video input: one decode pass per file gives scene cuts and 1-FPS frames (``VideoScanner``)."""

from salova.video.decode import BACKENDS, SampledFrame, VideoInfo, probe_video
from salova.video.scenes import AdaptiveDetectorConfig, ScanResult, SceneCut, VideoScanner
from salova.video.segments import Segment, SegmentCutter, segment_frames, split_scene, split_segments

__all__ = [
    "BACKENDS",
    "AdaptiveDetectorConfig",
    "SampledFrame",
    "ScanResult",
    "SceneCut",
    "Segment",
    "VideoInfo",
    "SegmentCutter",
    "VideoScanner",
    "probe_video",
    "segment_frames",
    "split_scene",
    "split_segments",
]
