"""Evaluation metrics, each a small pure function checked by hand in ``tests/eval/test_metrics.py``.

Notation: a window is ``(start_s, end_s)``; predictions are ranked best first.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

Window = tuple[float, float]

# Grounding: recall thresholds (Charades-STA / QVHighlights convention) and the ranks reported.
IOU_THRESHOLDS = (0.3, 0.5, 0.7)
RECALL_RANKS = (1, 5)


def temporal_iou(a: Window, b: Window) -> float:
    """Intersection over union of two time windows (0 when either is empty or they are disjoint)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 and inter > 0 else 0.0


def best_iou(pred: Window, truth: Sequence[Window]) -> float:
    """IoU of one predicted window with the ground-truth window it overlaps most (QVHighlights has several)."""
    return max((temporal_iou(pred, t) for t in truth), default=0.0)


def overlaps(pred: Window, truth: Sequence[Window]) -> bool:
    """The predicted window shares a positive length of time with some ground-truth window."""
    return any(min(pred[1], t[1]) - max(pred[0], t[0]) > 0 for t in truth)


def grounding_query_metrics(ranked: Sequence[Window], truth: Sequence[Window]) -> dict[str, float]:
    """Per-query values: ``R{k}@{t}`` (1.0 if any of the top-k windows has IoU >= t), ``IoU`` of the top-1
    window, ``hit@1`` (the top-1 window overlaps the truth at all)."""
    ious = [best_iou(p, truth) for p in ranked]
    out = {}
    for k in RECALL_RANKS:
        for t in IOU_THRESHOLDS:
            out[f"R{k}@{t}"] = float(any(iou >= t for iou in ious[:k]))
    out["IoU"] = ious[0] if ious else 0.0
    out["hit@1"] = float(bool(ranked) and overlaps(ranked[0], truth))
    return out


def grounding_metrics(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of the per-query values over queries; ``IoU`` becomes ``mIoU``."""
    keys = [f"R{k}@{t}" for k in RECALL_RANKS for t in IOU_THRESHOLDS] + ["mIoU", "hit@1"]
    if not per_query:
        return {k: 0.0 for k in keys}
    out = {k: float(np.mean([q[k] for q in per_query])) for k in keys if k != "mIoU"}
    out["mIoU"] = float(np.mean([q["IoU"] for q in per_query]))
    return {k: out[k] for k in keys}


def hit_at_k(ranked_segments: Sequence[int], targets: Iterable[int], k: int) -> float:
    """1.0 when one of the ``k`` best-ranked segments is a target segment."""
    wanted = set(targets)
    return float(any(s in wanted for s in ranked_segments[:k]))


# ---------------------------------------------------------------------------------------------- answers

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, answer: str) -> float:
    """1.0 when the normalised prediction equals the normalised answer ("Red." matches "red", "red and blue"
    does not)."""
    if prediction is None:
        return 0.0
    return float(normalize_answer(prediction) == normalize_answer(answer))


LETTERS = string.ascii_uppercase

# Phrases models put before the letter ("The best answer is (B)"); removed before looking for it.
_ANSWER_PREFIXES = re.compile(
    r"^\s*(?:the\s+)?(?:best|correct|right|final)?\s*(?:answer|option|choice)\s*(?:is|:)?\s*(?:option\s*)?[:\-]?\s*",
    re.IGNORECASE,
)


def extract_choice(text: str | None, options: Sequence[str]) -> str | None:
    """The option letter a model's reply names, or None.

    In order: a reply that starts with a letter (``"B"``, ``"B."``, ``"(B) a cat"``, ``"B: ..."``, after a
    prefix such as ``"The answer is"``); a letter in parentheses or after "answer/option"; a reply that equals or
    contains exactly one option's text; else exactly one standalone option letter anywhere. Only letters of
    existing options count, and a leading ``"A "`` followed by a lower-case word is the article, not option A.
    """
    if not text:
        return None
    valid = LETTERS[: len(options)]
    reply = text.strip().strip("*").strip()
    head = _ANSWER_PREFIXES.sub("", reply, count=1)
    for candidate in (reply, head):
        m = re.match(r"^[\(\[]?([A-Z])(?:[\)\]\.:,]|\s*$)", candidate)
        if m and m.group(1) in valid:
            return m.group(1)
        m = re.match(r"^([A-Z])\s+(\S)", candidate)
        if m and m.group(1) in valid and not (m.group(1) == "A" and m.group(2).islower()):
            return m.group(1)
    for pattern in (r"[\(\[]([A-Z])[\)\]]", r"(?:answer|option|choice)\s*(?:is\s*)?:?\s*\(?([A-Z])\b"):
        for m in re.finditer(pattern, reply, flags=re.IGNORECASE):
            letter = m.group(1).upper()
            if letter in valid:
                return letter
    if len(reply.strip(" .()[]")) == 1 and reply.strip(" .()[]").upper() in valid:  # a bare "b"
        return reply.strip(" .()[]").upper()
    said = normalize_answer(reply)
    texts = [normalize_answer(option_text(o)) for o in options]
    exact = [i for i, t in enumerate(texts) if t and t == said]
    if len(exact) == 1:
        return valid[exact[0]]
    inside = [i for i, t in enumerate(texts) if t and re.search(rf"\b{re.escape(t)}\b", said)]
    if len(inside) == 1:
        return valid[inside[0]]
    # Last resort: exactly one distinct standalone option letter ("I think it's C"); "A"/"I" before a lower-case
    # word are words, not letters.
    letters = {m.group(1) for m in re.finditer(r"\b([A-Z])\b", reply) if m.group(1) in valid
               and not (m.group(1) in "AI" and re.match(r"'|\s+[a-z]", reply[m.end():]))}
    return letters.pop() if len(letters) == 1 else None


def option_text(option: str) -> str:
    """``"B. a red car"`` -> ``"a red car"`` (Video-MME's options carry their letter); other text unchanged."""
    m = re.match(r"^\s*[\(\[]?[A-Z][\)\]\.:]\s*(.*)$", option, flags=re.DOTALL)
    return m.group(1).strip() if m else option.strip()


def accuracy_by(records: Sequence[dict], key: str) -> dict[str, dict[str, float]]:
    """``{group: {"n", "accuracy"}}`` over records with a boolean ``correct`` and a ``key`` field."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        value = r.get(key)
        if value is not None and value != "":
            groups[str(value)].append(bool(r["correct"]))
    return {g: {"n": len(v), "accuracy": float(np.mean(v))} for g, v in sorted(groups.items())}
