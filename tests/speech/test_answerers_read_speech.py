"""Asking through the library: lazy indexing adds speech, and answerers get the moments' transcript lines."""

from __future__ import annotations

from salova.answerers.base import Answerer, AnswerRequest
from salova.retrieval import Session
from tests.speech.conftest import SENTENCES


class RecordingAnswerer(Answerer):
    """Writes a fixed answer and keeps the request it was given."""

    kind, reads_frames, name = "text-lm", False, "recorder"

    def __init__(self):
        self.requests: list[AnswerRequest] = []

    def answer(self, request: AnswerRequest, max_new_tokens: int = 256) -> str:
        self.requests.append(request)
        return "It is said at the start."


def test_ask_on_a_new_talk_indexes_its_speech_and_feeds_the_answerer(tmp_path, talk, clip_dir):
    answerer = RecordingAnswerer()
    with Session(tmp_path / "index", encoder=str(clip_dir), top_k=2, progress=False, answerer=answerer) as session:
        result = session.ask(talk, SENTENCES[3][2])
    best = min(result.moments, key=lambda m: m.rank)
    assert (best.segment, best.channel) == (2, "speech")
    given = {m.rank: m for m in answerer.requests[0].moments}
    assert [ln.text.split()[:2] for ln in given[1].transcript] == [["The", "doctor"]]
    assert result.answer_moments[0]["transcript"] or result.answer_moments[1]["transcript"]
