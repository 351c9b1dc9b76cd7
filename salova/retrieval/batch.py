"""Batch questions: a JSONL (or plain-text) file in, one JSON result per line out; a bad line never ends the batch."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from salova.errors import SalovaError, UsageError
from salova.retrieval.results import AskResult
from salova.retrieval.session import Session

logger = logging.getLogger(__name__)


def read_questions(file: Path, video: str | None = None) -> Iterator[tuple[int, dict | str]]:
    """JSONL lines {"video", "question"} -> (line number, object or error). With ``video``, lines may be
    plain questions (or {"question"} objects) about that one video."""
    try:
        handle = open(file, encoding="utf-8", errors="replace")  # noqa: SIM115 (a generator keeps it open while reading)
    except OSError as exc:
        raise UsageError(f"{file}: cannot read questions ({exc.strerror})") from None
    with handle:
        for n, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                if video is not None:
                    yield n, {"video": video, "question": line}
                else:
                    yield n, f"line {n}: not JSON ({exc.msg})"
                continue
            if video is not None and not isinstance(obj, dict):
                obj = {"question": obj if isinstance(obj, str) else line}
            if not isinstance(obj, dict):
                yield n, f"line {n}: expected a JSON object"
                continue
            if video is not None:
                obj.setdefault("video", video)
            yield n, obj


def ask_many(session: Session, jobs: Iterator[tuple[int, dict | str]],
             on_result: Callable[[AskResult], None] | None = None) -> Iterator[dict]:
    """(line number, parsed object or error text) -> result or error objects, one per line. ``on_result`` sees
    each ``AskResult`` before its line is yielded (e.g. to collect them for a report)."""
    for line_no, job in jobs:
        if isinstance(job, str):
            yield {"line": line_no, "error": job}
            continue
        try:
            video, question = job.get("video"), job.get("question")
            if not isinstance(video, str) or not isinstance(question, str):
                raise UsageError("each line needs string fields 'video' and 'question'")
            asked = session.ask(video, question)
            if on_result is not None:
                on_result(asked)
            result = asked.to_dict()
            result["line"] = line_no
            yield result
        except Exception as exc:  # one bad line (or one failing video) must not end the batch
            if not isinstance(exc, SalovaError):
                logger.debug("line %d failed", line_no, exc_info=True)
            message = str(exc) if isinstance(exc, SalovaError) else f"{type(exc).__name__}: {exc}"
            yield {"line": line_no, "video": job.get("video"), "question": job.get("question"),
                   "error": " ".join(message.split())}
