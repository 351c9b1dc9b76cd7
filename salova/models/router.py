"""Segment Retrieval Router: scores every segment of a video against a question.

Routing tokens (one per segment) are the queries; the question's text-encoder token features are the
keys/values (cross-attention, paper Sec. 4.1.2). A learned global token sits among the keys so a segment
can attend to "nothing in particular". Score of segment i = cos(out_i, q) * exp(logit_scale), where q is
the question's sentence token, projected. The reference implementation takes the first text token; that
is the sentence summary for a bidirectional encoder (SigLIP) but sees only itself in CLIP's causal text
transformer, so the caller passes the encoder's pooled position (CLIP: EOS) as ``text_query``; without
it the first token is used, as in the reference.

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
    ffn_dim: int = 2048  # feed-forward width
    dropout: float = 0.0  # attention / FFN dropout (reference: 0)
    routing_dim: int = 1024  # width of the connector's routing tokens
    text_dim: int = 768  # width of the text encoder's token features
    max_segments: int = 1024  # learned segment positions; longer videos interpolate the table
    max_text_positions: int = 512  # learned text positions (extends CLIP's 77 / SigLIP's 64)
    logit_scale_init: float = 1.0  # score = cosine * exp(logit_scale)

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")


class LearnedPositions(nn.Module):
    """x + learned position table, then LayerNorm; tables interpolate past their length."""

    def __init__(self, length: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(length, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b, s, d] -> [b, s, d]."""
        s = x.shape[1]
        table = self.table.weight
        if s > table.shape[0]:
            table = F.interpolate(table.T[None], size=s, mode="linear", align_corners=True)[0].T
        return self.norm(x + table[:s][None])


class CrossAttentionLayer(nn.Module):
    """Post-norm layer: segments attend to [global ; text], then a PReLU feed-forward."""

    def __init__(self, c: RouterConfig):
        super().__init__()
        self.attn = nn.MultiheadAttention(c.d_model, c.heads, dropout=c.dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(c.d_model)
        self.ffn = nn.Sequential(
            nn.Linear(c.d_model, c.ffn_dim), nn.PReLU(), nn.Dropout(c.dropout), nn.Linear(c.ffn_dim, c.d_model)
        )
        self.norm2 = nn.LayerNorm(c.d_model)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, seg: torch.Tensor, keys: torch.Tensor, key_pad: torch.Tensor) -> torch.Tensor:
        """seg [b, n, d], keys [b, 1+t, d], key_pad [b, 1+t] (True = padding) -> [b, n, d]."""
        out, _ = self.attn(seg, keys, keys, key_padding_mask=key_pad, need_weights=False)
        seg = self.norm1(seg + self.drop(out))
        return self.norm2(seg + self.drop(self.ffn(seg)))


class SegmentRouter(nn.Module):
    """Question-conditioned relevance scores for the segments of a video."""

    def __init__(self, config: RouterConfig):
        super().__init__()
        self.config = c = config
        self.routing_proj = nn.Identity() if c.routing_dim == c.d_model else nn.Linear(c.routing_dim, c.d_model)
        self.text_proj = nn.Linear(c.text_dim, c.d_model)
        self.seg_pos = LearnedPositions(c.max_segments, c.d_model)
        self.text_pos = LearnedPositions(c.max_text_positions, c.d_model)
        self.global_token = nn.Parameter(torch.randn(c.d_model) * 0.02)
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
                # Position tables are added to projected features (std ~0.02-0.05) before a LayerNorm;
                # nn.Embedding's N(0, 1) would drown the content and slow learning several-fold.
                nn.init.normal_(m.weight, std=0.02)

    def sentence(self, text_query: torch.Tensor) -> torch.Tensor:
        """The sentence feature [b, e] projected to the score space [b, d]."""
        return self.text_pos.norm(self.text_proj(text_query))

    def forward(
        self,
        routing: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        segment_mask: torch.Tensor | None = None,
        text_query: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score segments.

        Args:
            routing: [b, n, v] routing tokens, videos padded to the longest n.
            text_tokens: [b, t, e] penultimate-layer text features of each question.
            text_mask: [b, t] bool, True for real text tokens.
            segment_mask: [b, n] bool, True for real segments (None: all real).
            text_query: [b, e] the sentence feature to score against (None: the first text token).
        Returns:
            scores: [b, n] logits; padded segments get -inf.
        """
        seg = self.seg_pos(self.routing_proj(routing))  # [b, n, d]
        text = self.text_pos(self.text_proj(text_tokens.to(seg.dtype)))  # [b, t, d]
        b = seg.shape[0]
        keys = torch.cat([self.global_token.expand(b, 1, -1), text], dim=1)  # [b, 1+t, d]
        key_pad = torch.cat([text_mask.new_zeros(b, 1), ~text_mask.bool()], dim=1)  # [b, 1+t]
        for layer in self.layers:
            seg = layer(seg, keys, key_pad)
        query = text[:, 0] if text_query is None else self.sentence(text_query.to(seg.dtype))  # [b, d]
        scores = torch.einsum("bnd,bd->bn", F.normalize(seg, dim=-1), F.normalize(query, dim=-1))
        scores = scores * self.logit_scale.exp()
        if segment_mask is not None:
            scores = scores.masked_fill(~segment_mask.bool(), float("-inf"))
        return scores
