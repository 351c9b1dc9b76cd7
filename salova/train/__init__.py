"""SALOVA's staged training (paper stages 1, 1.5, 2) on DeepSpeed ZeRO-2.

``train(resolve_config(stage, config_file, overrides))`` is what ``salova train`` runs. DeepSpeed is
imported only when training starts (``pip install salova[train]``).
"""

from salova.train.presets import STAGE_PRESETS, STAGES, TrainConfig, parse_set, resolve_config, stage_preset
from salova.train.recipe import TrainResult, train

__all__ = ["STAGES", "STAGE_PRESETS", "TrainConfig", "TrainResult", "parse_set", "resolve_config", "stage_preset",
           "train"]
