"""Deprecated module path, kept for one release: use ``salova.retrieval`` (``Asker`` is ``Session``)."""

from salova.retrieval import AskResult, Moment, SearchHit, Session, hms, plot_relevance, read_questions

Asker = Session

__all__ = ["Asker", "AskResult", "Moment", "SearchHit", "Session", "hms", "plot_relevance", "read_questions"]
