"""SALOVA model parts, one per file; ``Salova`` ties them together."""

import os

import torch

# transformers' loaders import accelerate, which imports DeepSpeed when it is installed (the train extra); on a
# machine without CUDA, DeepSpeed's accelerator probe then prints a warning to *stdout*, which would corrupt
# `--json` output. Naming the CPU accelerator up front skips the probe; a GPU machine is left to auto-detect.
if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
    os.environ["DS_ACCELERATOR"] = "cpu"

# ruff: isort: split

from salova.models.connector import ConnectorConfig, STConnector, tokens_kept
from salova.models.encoder import FrameFeatures, TextFeatures, VisionTextEncoder
from salova.models.focusfast import FocusFastConfig, FocusFastLM, select_focus, visual_tokens
from salova.models.loss import SimilarityLossConfig, batch_similarity_loss, similarity_loss
from salova.models.projector import Projector, ProjectorConfig
from salova.models.router import RouterConfig, SegmentRouter
from salova.models.salova import Salova, SalovaConfig, config_for_encoder
from salova.models.zero_shot import segment_embedding, zero_shot_scores

__all__ = [
    "ConnectorConfig", "STConnector", "tokens_kept", "FrameFeatures", "TextFeatures", "VisionTextEncoder",
    "FocusFastConfig", "FocusFastLM", "select_focus", "visual_tokens", "SimilarityLossConfig",
    "batch_similarity_loss", "similarity_loss", "Projector", "ProjectorConfig", "RouterConfig", "SegmentRouter",
    "Salova", "SalovaConfig", "config_for_encoder", "segment_embedding", "zero_shot_scores",
]
