"""Answerers: models that read the retrieved moments and write an answer that cites them.

``load_answerer(spec)`` picks the kind from what ``spec`` is (docs/answerers.md); ``build_request`` turns a
video's top-K moments into what every answerer reads (frames re-decoded at their stored times, transcript
lines, the moment list); ``cite`` keeps the answer tied to the moments' index timestamps.
"""

from salova.answerers.base import Answerer, AnswerRequest, MomentInput, TranscriptLine
from salova.answerers.context import FRAME_MAX_SIDE, build_request, pick_frame_times, transcript_for
from salova.answerers.load import ANSWERER_KINDS, is_url, load_answerer
from salova.answerers.prompt import build_prompt, cite, cited_moments

__all__ = [
    "ANSWERER_KINDS",
    "FRAME_MAX_SIDE",
    "AnswerRequest",
    "Answerer",
    "MomentInput",
    "TranscriptLine",
    "build_prompt",
    "build_request",
    "cite",
    "cited_moments",
    "is_url",
    "load_answerer",
    "pick_frame_times",
    "transcript_for",
]
