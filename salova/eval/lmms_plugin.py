"""The lmms-eval model class (imports lmms-eval; loaded by lmms-eval through the ``lmms_eval.models`` entry point).
All the logic is in ``lmms_model.SalovaEvalModel``."""

from __future__ import annotations

from lmms_eval.api.model import lmms

from salova.eval.lmms_model import SalovaEvalModel


class SalovaLMM(SalovaEvalModel, lmms):
    is_simple = True  # requests carry (context, gen_kwargs, doc_to_visual, doc_id, task, split)

    def __init__(self, **kwargs):
        lmms.__init__(self)
        SalovaEvalModel.__init__(self, **kwargs)
