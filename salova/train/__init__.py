"""SALOVA's staged training (paper stages 1, 1.5, 2) on DeepSpeed ZeRO-2.

``train(resolve_config(stage, config_file, overrides))`` is what ``salova train`` runs. The options are the
fields of ``TrainConfig`` (``config.py``); the run is ``recipe.py``. DeepSpeed is imported only when training
starts (``pip install salova[train]``).
"""

from salova.train.config import STAGE_PRESETS, STAGES, TrainConfig, resolve_config, stage_preset


def __getattr__(name: str):
    # The recipe imports torch and the models: load it on first use, so the CLI starts without them.
    if name in ("TrainResult", "train"):
        from salova.train import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'salova.train' has no attribute {name!r}")


__all__ = ["STAGES", "STAGE_PRESETS", "TrainConfig", "TrainResult", "resolve_config", "stage_preset", "train"]
