"""A video's audio track as 16 kHz mono float32 samples (what Whisper reads), decoded with PyAV."""

from __future__ import annotations

import os

import av
import numpy as np

SAMPLE_RATE = 16000  # Whisper's input rate


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """Samples [n] float32 in [-1, 1], or None when the file has no (decodable) audio track.

    A track that breaks off part-way (a truncated file) gives what decoded before the break.
    """
    try:
        container = av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError):
        return None
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except (av.error.FFmpegError, ValueError):
            pass  # keep the part that decoded
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32, copy=False)


def is_silent(samples: np.ndarray, threshold: float = 1e-3) -> bool:
    """True when the loudest 100 ms window's RMS is below ``threshold`` (nothing for Whisper to hear)."""
    if samples is None or not len(samples):
        return True
    win = SAMPLE_RATE // 10
    n = len(samples) // win * win
    frames = samples[:n].reshape(-1, win) if n else samples[None]
    return float(np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)).max()) < threshold
