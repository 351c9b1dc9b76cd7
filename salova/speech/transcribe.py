"""Speech to timed text: faster-whisper with voice-activity detection and word timestamps.

A file with no audio track, or a silent one, gives an empty transcript (not an error).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from salova.errors import option_problem
from salova.speech.audio import SAMPLE_RATE, is_silent, load_audio


@dataclass
class Word:
    start_s: float
    end_s: float
    text: str  # as Whisper wrote it, leading space stripped
    prob: float


@dataclass
class Line:
    """One Whisper segment (about a sentence) and its words."""

    start_s: float
    end_s: float
    text: str
    words: list[Word] = field(default_factory=list)


@dataclass
class Transcript:
    lines: list[Line]
    language: str | None  # detected or given; None when nothing was heard
    audio_s: float  # seconds of audio read (0: no audio track)
    note: str | None = None  # "no audio track", "silent"


class Transcriber:
    """One loaded Whisper model; ``transcribe(path)`` per video."""

    def __init__(self, spec: str, language: str | None = None, device: str = "cpu", threads: int = 0):
        from salova.speech.models import load_whisper

        self.spec, self.language = spec, language
        self.model = load_whisper(spec, device=device, threads=threads)
        if language not in (None, "en") and not self.model.model.is_multilingual:
            raise option_problem("language", f"{language!r}: the Whisper model {spec} is English-only; give a "
                                 "multilingual --speech-model (e.g. small)")

    def transcribe(self, path: str | os.PathLike, on_progress: Callable[[float], None] | None = None) -> Transcript:
        """``on_progress(seconds)`` is called with the audio seconds covered so far (for a progress bar)."""
        return self.transcribe_samples(load_audio(path), on_progress)

    def transcribe_samples(self, samples: np.ndarray | None,
                           on_progress: Callable[[float], None] | None = None) -> Transcript:
        """16 kHz mono samples [n] (``audio.load_audio``) -> Transcript."""
        quiet = unheard(samples)
        if quiet is not None:
            return quiet
        audio_s = len(samples) / SAMPLE_RATE
        segments, info = self.model.transcribe(
            samples, language=self.language, vad_filter=True, word_timestamps=True, beam_size=1,
            condition_on_previous_text=False,
        )
        lines = []
        for seg in segments:
            words = [Word(float(w.start), float(w.end), w.word.strip(), float(w.probability))
                     for w in (seg.words or []) if w.word.strip()]
            text = seg.text.strip()
            if text and words:
                lines.append(Line(words[0].start_s, words[-1].end_s, text, words))
            if on_progress is not None:
                on_progress(min(float(seg.end), audio_s))
        if on_progress is not None:
            on_progress(audio_s)
        return Transcript(lines, info.language if lines else None, audio_s, note=None if lines else "no speech")


def unheard(samples: np.ndarray | None) -> Transcript | None:
    """The empty transcript of a file with no audio track or a silent one; None when there is sound."""
    if samples is None:
        return Transcript([], None, 0.0, note="no audio track")
    if is_silent(samples):
        return Transcript([], None, len(samples) / SAMPLE_RATE, note="silent")
    return None
