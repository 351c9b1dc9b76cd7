"""SALOVA model parts, one per file; ``Salova`` ties them together."""

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
