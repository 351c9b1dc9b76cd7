"""What every answerer reads and the one method it has.

An answerer turns the retrieved moments of a video into a written answer. It never chooses the moments and
never makes up their times: ``Session`` retrieves them from the index, ``context.build_request`` picks and
decodes their frames, and the answerer only writes. Kinds (one file each): ``hf_vlm`` (a Hugging Face
vision-language model reading frames), ``text_lm`` (a causal LM reading the moment list and transcript),
``openai_endpoint`` (an OpenAI-compatible chat server); FocusFast (a trained SALOVA checkpoint) stays in
``salova.models``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class TranscriptLine:
    """One timed line of speech (from the speech channel, when the video's speech is indexed)."""

    start_s: float
    end_s: float
    text: str


@dataclass
class MomentInput:
    """One retrieved moment as an answerer sees it. Times come from the index, never from a model."""

    rank: int  # 1 = best score
    segment: int
    start_s: float
    end_s: float
    at_s: float  # the best-matching frame
    score: float
    frame_times: list[float] = field(default_factory=list)  # stored 1-FPS times picked for this moment
    frames: list[np.ndarray] = field(default_factory=list)  # [H, W, 3] uint8 RGB, one per frame time
    transcript: list[TranscriptLine] = field(default_factory=list)

    def to_dict(self) -> dict:
        """What the JSON result reports as given to the answerer (no pixels)."""
        return {
            "rank": self.rank, "segment": self.segment, "start_s": self.start_s, "end_s": self.end_s,
            "at_s": self.at_s, "frame_times": [round(t, 3) for t in self.frame_times],
            "transcript": [{"start_s": ln.start_s, "end_s": ln.end_s, "text": ln.text} for ln in self.transcript],
        }


@dataclass
class AnswerRequest:
    """A question about one video and the moments to answer from, in time order."""

    video: str  # the file name shown to the model
    question: str
    moments: list[MomentInput]
    duration_s: float | None = None

    @property
    def num_frames(self) -> int:
        return sum(len(m.frames) for m in self.moments)


class Answerer(ABC):
    """Writes an answer from an ``AnswerRequest``. Loaded once, then asked any number of questions."""

    kind: ClassVar[str]  # "hf-vlm", "text-lm", "openai"
    reads_frames: ClassVar[bool]  # False: no frames are decoded for it

    name: str  # the model: a directory, hub id, .gguf file, or endpoint model name

    @property
    def label(self) -> str:
        """What results report as ``answerer``: ``kind:name``."""
        return f"{self.kind}:{self.name}"

    @abstractmethod
    def answer(self, request: AnswerRequest, max_new_tokens: int = 256) -> str:
        """The model's answer text (stripped)."""

    def close(self) -> None:  # noqa: B027 (optional hook: most answerers hold nothing to release)
        """Release what the answerer holds (models, connections)."""
