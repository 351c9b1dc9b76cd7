"""The prompt every answerer sends, and the citations every answer carries.

``build_prompt`` lays a request out once, as a system text and a list of parts: text, or an image (an index
into the request's frames, in order). Each answerer only converts the parts to its model's message format, so
all kinds read the same words:

    Video: lecture.mp4 (00:42:10 long). The moments retrieved for the question, in time order:
    Moment 1: 00:03:10-00:04:02 (best match at 00:03:41)
    [00:03:12] <image>  [00:03:41] <image>
    Speech:
    [00:03:15] so the gradient of the loss is ...
    ...
    Question: when is the gradient derived?

``cite`` makes sure an answer names the moments it was given by their index timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from salova.answerers.base import AnswerRequest

SYSTEM = (
    "You answer questions about a video using only the moments a retrieval system found in it. Each moment has a "
    "time range; frames and speech are labelled with their time. Cite the moments you use by their start time in "
    "square brackets, like [00:03:10]. If the moments do not show the answer, say so."
)


def clock(seconds: float) -> str:
    """HH:MM:SS (whole seconds)."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class Part:
    kind: str  # "text" or "image"
    text: str = ""
    image: int = -1  # index into the request's frames, in moment then frame order


@dataclass
class Prompt:
    system: str
    parts: list[Part]

    def as_text(self, image_mark: str = "") -> str:
        """The user turn as one string (text-only models: images become ``image_mark``, usually nothing)."""
        return "".join(p.text if p.kind == "text" else image_mark for p in self.parts)


def build_prompt(request: AnswerRequest, *, images: bool = True) -> Prompt:
    """The system text and the user turn's parts. ``images=False`` leaves frames out (text-only models)."""
    parts: list[Part] = []

    def text(s: str) -> None:
        if parts and parts[-1].kind == "text":
            parts[-1] = Part("text", parts[-1].text + s)
        else:
            parts.append(Part("text", s))

    length = f" ({clock(request.duration_s)} long)" if request.duration_s else ""
    text(f"Video: {request.video}{length}. The moments retrieved for the question, in time order:\n")
    image = 0
    for n, m in enumerate(request.moments, start=1):
        text(f"Moment {n}: {clock(m.start_s)}-{clock(m.end_s)} (best match at {clock(m.at_s)})\n")
        if images:
            for t, _ in zip(m.frame_times, m.frames, strict=True):
                text(f"[{clock(t)}] ")
                parts.append(Part("image", image=image))
                image += 1
            if m.frames:
                text("\n")
        if m.transcript:
            text("Speech:\n" + "".join(f"[{clock(ln.start_s)}] {ln.text}\n" for ln in m.transcript))
    if not any(m.transcript for m in request.moments):
        text("(No speech transcript is indexed for these moments.)\n")
    text(f"\nQuestion: {request.question}")
    return Prompt(SYSTEM, parts)


_CLOCK = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:\.\d+)?\b")


def cited_moments(answer: str, request: AnswerRequest) -> list[int]:
    """Ranks of the given moments whose time range contains a timestamp written in ``answer``."""
    ranks = []
    for h, m, s in _CLOCK.findall(answer):
        t = int(h or 0) * 3600 + int(m) * 60 + int(s)
        for mo in request.moments:
            if mo.start_s - 1 <= t <= mo.end_s + 1 and mo.rank not in ranks:
                ranks.append(mo.rank)
    return ranks


def cite(answer: str, request: AnswerRequest) -> str:
    """``answer`` as written when it cites a given moment; otherwise with the moments' index times appended."""
    answer = answer.strip()
    if not request.moments or cited_moments(answer, request):
        return answer
    times = ", ".join(f"[{clock(m.start_s)}-{clock(m.end_s)}]" for m in request.moments)
    return f"{answer}\n(Moments: {times})" if answer else f"(Moments: {times})"
