"""Retrieval: scorers behind one interface, a session that asks and searches, batch files, rendering."""

from salova.retrieval.batch import ask_many, read_questions
from salova.retrieval.render import hms, plot_relevance
from salova.retrieval.results import AskResult, Moment, SearchHit
from salova.retrieval.scorers import Query, RouterScorer, Scorer, ZeroShotScorer
from salova.retrieval.session import Session

__all__ = [
    "AskResult",
    "Moment",
    "Query",
    "RouterScorer",
    "Scorer",
    "SearchHit",
    "Session",
    "ZeroShotScorer",
    "ask_many",
    "hms",
    "plot_relevance",
    "read_questions",
]
