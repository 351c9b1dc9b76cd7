"""Real speech at known times for tests and benchmarks: ``espeak-ng`` (``apt-get install espeak-ng``).

    audio = speech_track([(2.0, "The chef slices tomatoes."), (12.0, "The train leaves at noon.")], 20.0)
    make_video(path, segments, audio=audio, audio_rate=SPEECH_RATE)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPEECH_RATE = 22050  # espeak-ng's output rate


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def say(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng: mono float32 samples [n] at SPEECH_RATE."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        with wave.open(str(wav)) as f:
            pcm = np.frombuffer(f.readframes(f.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768.0


def speech_track(sentences: Sequence[tuple[float, str]], duration_s: float) -> np.ndarray:
    """Silence of ``duration_s`` with each ``(start_s, text)`` spoken from ``start_s`` (samples [n])."""
    out = np.zeros(int(duration_s * SPEECH_RATE), np.float32)
    for start, text in sentences:
        pcm = say(text)
        a = int(start * SPEECH_RATE)
        b = min(len(out), a + len(pcm))
        out[a:b] = pcm[: b - a]
    return out
