"""salova as an lmms-eval model: ``generate_until`` and ``loglikelihood`` on the path ``salova ask`` runs.

lmms-eval finds it through the entry point ``salova`` in the group ``lmms_eval.models`` (``manifest`` below; the
class itself, which subclasses lmms-eval's ``lmms``, is in ``lmms_plugin``). This module does not import
lmms-eval, so the logic is usable and tested without it::

    pip install lmms-eval
    lmms-eval --model salova --model_args pretrained=CKPT,index=IDX --tasks videomme

Model arguments: ``pretrained`` (or ``model``; a SALOVA checkpoint, omit for zero-shot), ``encoder``, ``index``
(default: the user index), ``device``, ``top_k``, ``max_new_tokens``.

- ``generate_until``: the request's first video is indexed (if new) and asked the context. With an LLM the reply
  is FocusFast's, cut at the first ``until`` string. Without one: a context with lettered options (``A. ...``
  lines) gets the letter of the retrieval rule of ``salova eval mcq``; any other context gets the top moment as
  ``"start_s-end_s"``.
- ``loglikelihood`` (multiple-choice tasks): the retrieval rule's option score of the continuation, i.e. its best
  score over the context's top-K moments, with ``is_greedy`` False. It is not a log-probability: it only ranks the
  options of one question, which is all lmms-eval's multiple-choice metrics use.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from salova.errors import UsageError
from salova.eval.mcq import answer_zero_shot
from salova.retrieval.session import Session

logger = logging.getLogger(__name__)

_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[\.\):]\s+(.+?)\s*$")


def manifest():
    """The ``lmms_eval.models`` entry point: lmms-eval's registry reads this manifest."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="salova", simple_class_path="salova.eval.lmms_plugin.SalovaLMM")


def split_options(context: str) -> tuple[str, list[str]]:
    """A prompt with ``A. ...`` / ``(B) ...`` lines -> (the other lines, the options in letter order)."""
    question, options = [], []
    for line in context.splitlines():
        m = _OPTION_LINE.match(line)
        if m and ord(m.group(1)) - ord("A") == len(options):
            options.append(m.group(2))
        else:
            question.append(line)
    text = " ".join(ln.strip() for ln in question if ln.strip() and not ln.strip().lower().startswith("answer with"))
    return text, options if len(options) >= 2 else []


class SalovaEvalModel:
    """The request handling behind the lmms-eval class (``task_dict`` is filled in by lmms-eval's evaluator)."""

    def __init__(self, pretrained: str | None = None, model: str | None = None, encoder: str | None = None,
                 index: str | None = None, device: str = "auto", top_k: int | str = 5,
                 max_new_tokens: int | str = 128, **unused):
        from salova.store.records import default_index_dir

        if unused:
            logger.info("salova ignores lmms-eval arguments %s", sorted(unused))
        self.task_dict = getattr(self, "task_dict", {})
        self.session = Session(Path(index).expanduser() if index else default_index_dir(), model=pretrained or model,
                               encoder=encoder, device=device, top_k=int(top_k), max_new_tokens=int(max_new_tokens),
                               progress=False)

    def _video(self, doc_to_visual, doc_id, task, split) -> str:
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        videos = [v for v in visuals or [] if isinstance(v, (str, Path))]
        if not videos:
            raise UsageError(f"{task}/{doc_id}: salova answers about videos, and this request has none")
        return str(videos[0])

    def generate_until(self, requests) -> list[str]:
        out = []
        for req in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = req.args
            video = self._video(doc_to_visual, doc_id, task, split)
            result = self.session.ask(video, context)
            if result.answer is not None:
                out.append(_cut(result.answer, (gen_kwargs or {}).get("until")))
                continue
            question, options = split_options(context)
            if options:
                out.append(answer_zero_shot(self.session, video, question or context, options)[0])
            else:
                best = min(result.moments, key=lambda m: m.rank)
                out.append(f"{best.start_s:g}-{best.end_s:g}")
        return out

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        tops: dict[tuple[str, str], list[int]] = {}  # the question's top moments, once per (video, question)
        for req in requests:
            context, doc_to_target, doc_to_visual, doc_id, task, split = req.args
            doc = self.task_dict[task][split][doc_id]
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            video = self._video(doc_to_visual, doc_id, task, split)
            question, _ = split_options(context)
            key = (str(video), question or context)
            if key not in tops:  # every option of one question shares them
                tops[key] = [m.segment for m in self.session.ask(video, question or context).moments]
            top = tops[key]
            scores = np.asarray(self.session.ask(video, f"{str(continuation).strip()}. {question or context}").scores)
            out.append((float(scores[top].max()), False))
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        from salova.errors import UsageError

        raise UsageError("salova answers single-round questions: use a task's generate_until form")


def _cut(text: str, until) -> str:
    for stop in [until] if isinstance(until, str) else until or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text
