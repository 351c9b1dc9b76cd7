"""Segment Retrieval Router: scores every segment of a video against a question (paper Sec. 4.1.2).

Routing tokens (one per segment) are the queries of a 2-layer cross-attention transformer; the question's
text is the keys/values. The layer follows the reference (``selector_attn.py``, a DETR-style encoder layer):
learned positions enter the queries and keys only (query = x + P(x), key = text + P(text), value = text, with
P(x) = dropout(LayerNorm(x + table))), post-norm attention and PReLU feed-forward of width d_model, and one
more residual around each whole layer. The text is the encoder's pooled sentence feature followed by its
penultimate-layer token features (the reference prepends the pooled token as text token 0); the score of
segment i is cos(out_i, sentence) * exp(logit_scale), the sentence feature projected. For CLIP the pooled
feature is the EOS position, the one that has seen the whole (causal) sentence; for SigLIP its pooler output.

Notation: b questions (one video each), n segments, t text tokens, d d_model, v routing width, e text width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RouterConfig:
    d_model: int = 1024  # router width (paper: 1024)
    layers: int = 2  # cross-attention layers (paper: 2)
    heads: int = 1  # attention heads (paper: 1)
    ffn_dim: int | None = None  # feed-forward width; None: d_model (reference scripts: d_model)
    dropout: float = 0.0  # attention / FFN dropout (reference: 0)
    position_dropout: float = 0.1  # dropout on the position terms P(x) (reference: 0.1)
    routing_dim: int = 1024  # width of the connector's routing tokens
    text_dim: int = 768  # width of the text encoder's token features
    max_segments: int = 1024  # learned segment positions; longer videos interpolate the table
    max_text_positions: int = 2048  # learned text positions, sentence token included (reference: 2048)
    position_init_std: float = 1.0  # learned position tables ~ N(0, std^2) (reference: nn.Embedding's N(0, 1))
    logit_scale_init: float = 1.0  # score = cosine * exp(logit_scale)

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")


class LearnedPositions(nn.Module):
    """P(x) = dropout(LayerNorm(x + learned table)); the table interpolates past its length."""

    def __init__(self, length: int, dim: int, dropout: float):
        super().__init__()
        self.table = nn.Embedding(length, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b, s, d] -> [b, s, d]."""
        s = x.shape[1]
        table = self.table.weight
        if s > table.shape[0]:
            table = F.interpolate(table.T[None], size=s, mode="linear", align_corners=True)[0].T
        return self.drop(self.norm(x + table[:s][None]))


class CrossAttentionLayer(nn.Module):
    """Segments attend to the text (positions on queries and keys), post-norm, PReLU feed-forward."""

    def __init__(self, c: RouterConfig):
        super().__init__()
        ffn = c.ffn_dim or c.d_model
        self.attn = nn.MultiheadAttention(c.d_model, c.heads, dropout=c.dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(c.d_model)
        self.ffn = nn.Sequential(
            nn.Linear(c.d_model, ffn), nn.PReLU(), nn.Dropout(c.dropout), nn.Linear(ffn, c.d_model)
        )
        self.norm2 = nn.LayerNorm(c.d_model)
        self.drop = nn.Dropout(c.dropout)

    def forward(
        self, seg: torch.Tensor, seg_pos: torch.Tensor, text: torch.Tensor, text_pos: torch.Tensor,
        key_pad: torch.Tensor,
    ) -> torch.Tensor:
        """seg, seg_pos [b, n, d]; text, text_pos [b, t, d]; key_pad [b, t] (True = padding) -> [b, n, d]."""
        out, _ = self.attn(seg + seg_pos, text + text_pos, text, key_padding_mask=key_pad, need_weights=False)
        x = seg + self.drop(out)
        x = self.norm2(x + self.drop(self.ffn(self.norm1(x))))
        return x + seg  # the reference wraps each layer in one more residual


class SegmentRouter(nn.Module):
    """Question-conditioned relevance scores for the segments of a video."""

    def __init__(self, config: RouterConfig):
        super().__init__()
        self.config = c = config
        self.routing_proj = nn.Identity() if c.routing_dim == c.d_model else nn.Linear(c.routing_dim, c.d_model)
        self.text_proj = nn.Linear(c.text_dim, c.d_model)
        self.seg_pos = LearnedPositions(c.max_segments, c.d_model, c.position_dropout)
        self.text_pos = LearnedPositions(c.max_text_positions, c.d_model, c.position_dropout)
        self.layers = nn.ModuleList(CrossAttentionLayer(c) for _ in range(c.layers))
        self.logit_scale = nn.Parameter(torch.tensor(c.logit_scale_init))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=self.config.position_init_std)

    def forward(
        self,
        routing: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        sentence: torch.Tensor,
        segment_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score segments.

        Args:
            routing: [b, n, v] routing tokens, videos padded to the longest n.
            text_tokens: [b, t, e] penultimate-layer text features of each question.
            text_mask: [b, t] bool, True for real text tokens.
            sentence: [b, e] the encoder's pooled sentence feature (``TextFeatures.sentence``).
            segment_mask: [b, n] bool, True for real segments (None: all real).
        Returns:
            scores: [b, n] logits; padded segments get -inf.
        """
        seg = self.routing_proj(routing)  # [b, n, d]
        tokens = torch.cat([sentence[:, None], text_tokens], dim=1).to(seg.dtype)  # [b, 1+t, e]
        text = self.text_proj(tokens)  # [b, 1+t, d]
        first = torch.zeros(text_mask.shape[0], 1, dtype=torch.bool, device=text_mask.device)
        key_pad = torch.cat([first, ~text_mask.bool()], dim=1)  # [b, 1+t]
        seg_pos, text_pos = self.seg_pos(seg), self.text_pos(text)
        for layer in self.layers:
            seg = layer(seg, seg_pos, text, text_pos, key_pad)
        scores = torch.einsum("bnd,bd->bn", F.normalize(seg, dim=-1), F.normalize(text[:, 0], dim=-1))
        scores = scores * self.logit_scale.exp()
        if segment_mask is not None:
            scores = scores.masked_fill(~segment_mask.bool(), float("-inf"))
        return scores
