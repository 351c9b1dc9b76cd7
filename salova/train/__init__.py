"""SALOVA's staged training (paper stages 1, 1.5, 2) on DeepSpeed ZeRO-2.

``train(resolve_config(stage, config_file, overrides))`` is what ``salova train`` runs. The options are the
fields of ``TrainConfig`` (``config.py``); the run is ``recipe.py``. DeepSpeed is imported only when training
starts (``pip install salova[train]``).
"""

from salova.train.config import STAGE_PRESETS, STAGES, TrainConfig, resolve_config, stage_preset
from salova.train.recipe import TrainResult, train

__all__ = ["STAGES", "STAGE_PRESETS", "TrainConfig", "TrainResult", "resolve_config", "stage_preset", "train"]
