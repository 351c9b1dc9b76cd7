"""What retrieval returns: moments of one video, hits across the library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Moment:
    rank: int  # 1 = best score
    segment: int  # segment index in the video
    start_s: float
    end_s: float
    at_s: float  # the best-matching 1-FPS frame (visual), or the first word of the matching speech (speech)
    score: float
    channel: str = "visual"  # which channel found it: "visual" or "speech" (salova.retrieval.fusion)
    transcript: str | None = None  # what is said in the segment (the matching line first), when speech is indexed


@dataclass
class AskResult:
    video: str
    question: str
    model: str
    mode: str  # "router" or "zero-shot", "+speech" when the speech channel took part
    answer: str | None
    note: str | None  # why there is no answer, or other caveats
    moments: list[Moment]
    answerer: str | None = None  # who answered: "focusfast", or "KIND:NAME" (hf-vlm, text-lm, openai)
    answer_moments: list[dict] = field(default_factory=list)  # the moments the answerer read (frame times, speech)
    scores: list[float] = field(default_factory=list)  # every segment's score (for plots)
    segments: list[tuple[float, float]] = field(default_factory=list)  # every segment's (start_s, end_s)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("scores")
        d.pop("segments")
        return d


@dataclass
class SearchHit:
    video: str
    segment: int
    start_s: float
    end_s: float
    score: float
    channel: str = "visual"
    transcript: str | None = None
