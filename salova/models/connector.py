"""Spatio-Temporal Connector: a Perceiver resampler turning one video segment into fixed-size latents.

A segment of f frames with p pooled patch tokens each (f*p tokens, any length) becomes one routing
token plus ``num_latents`` latents. Learned spatial (per pooled patch) and temporal (per frame)
embeddings are added before flattening so that tokens keep their place after dynamic token drop.

Notation: b segments, f frames, p tokens per frame, n = f*p media tokens, l latents (+1 routing), d width,
h heads, k head dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ConnectorConfig:
    dim: int = 1024  # width of media tokens and latents (paper: 1024; the encoder's width)
    depth: int = 2  # Perceiver layers
    heads: int = 2  # attention heads
    dim_head: int = 64  # width of one head
    num_latents: int = 256  # latents per segment fed to the LLM (focus pathway)
    ff_mult: int = 4  # feed-forward expansion
    tokens_per_frame: int = 144  # pooled patches per frame (CLIP-L/14-336: 144; SigLIP-384: 196)
    max_frames: int = 2160  # learned temporal embeddings; longer segments interpolate the table
    max_token_drop: float = 0.0  # training only; stage 1 / 1.5 / 2: 0.0 / 0.7 / 0.4
    token_drop_ref_len: int = 18000  # sequence length at which the full max_token_drop applies
    # Latents and spatial/temporal embeddings ~ N(0, std^2). The reference draws N(0, 1) (torch.randn); 0.02
    # learned faster in every measured run (docs/training.md, ablation), so it stays the default.
    init_std: float = 0.02

    def __post_init__(self):
        if not 0.0 <= self.max_token_drop < 1.0:
            raise ValueError(f"max_token_drop must be in [0, 1), got {self.max_token_drop}")
        for name in ("dim", "depth", "heads", "dim_head", "num_latents", "tokens_per_frame", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def tokens_kept(seq_len: int, max_drop: float, ref_len: int = 18000) -> int:
    """Dynamic token drop: how many of ``seq_len`` tokens survive (paper Sec. 4.1.1)."""
    ratio = max_drop * min(seq_len / ref_len, 1.0)
    return max(1, int(seq_len * (1.0 - ratio)))


class PerceiverAttention(nn.Module):
    """Latents attend to [media tokens ; latents] (Flamingo-style resampler attention)."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor, media_mask: torch.Tensor) -> torch.Tensor:
        """media [b, n, d], latents [b, l, d], media_mask [b, n] (True = real token) -> [b, l, d]."""
        b, n, _ = media.shape
        l = latents.shape[1]  # noqa: E741
        media, latents = self.norm_media(media), self.norm_latents(latents)
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([media, latents], dim=1)).chunk(2, dim=-1)
        q = q.view(b, l, self.heads, self.dim_head).transpose(1, 2)  # (b, h, l, k)
        k = k.view(b, n + l, self.heads, self.dim_head).transpose(1, 2)  # (b, h, n+l, k)
        v = v.view(b, n + l, self.heads, self.dim_head).transpose(1, 2)
        keep = torch.cat([media_mask, media_mask.new_ones(b, l)], dim=1)  # latents always attendable
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])  # (b, h, l, k)
        return self.to_out(out.transpose(1, 2).reshape(b, l, -1))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int):
        super().__init__(
            nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
        )


class STConnector(nn.Module):
    """Perceiver resampler over one segment's frames -> (routing token, latents)."""

    def __init__(self, config: ConnectorConfig):
        super().__init__()
        self.config = c = config
        self.routing_latent = nn.Parameter(torch.zeros(1, c.dim))  # zero init; frame CLS mean is added
        self.latents = nn.Parameter(torch.randn(c.num_latents, c.dim) * c.init_std)
        self.spatial_embed = nn.Parameter(torch.randn(c.tokens_per_frame, c.dim) * c.init_std)
        self.temporal_embed = nn.Parameter(torch.randn(c.max_frames, c.dim) * c.init_std)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(c.dim, c.heads, c.dim_head), FeedForward(c.dim, c.ff_mult)])
            for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.dim)

    def _temporal(self, f: int) -> torch.Tensor:
        """Temporal embeddings for f frames [f, d]; interpolated when f exceeds the learned table."""
        table = self.temporal_embed
        if f <= table.shape[0]:
            return table[:f]
        return F.interpolate(table.T[None], size=f, mode="linear", align_corners=True)[0].T

    def drop_tokens(self, media: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dynamic token drop (training only): keep a random subset of each segment's real tokens.

        Each segment keeps ``tokens_kept(its own length)`` tokens in their original order;
        media [b, n, d], mask [b, n] -> media [b, n', d], mask [b, n'] with n' = the largest count kept.
        """
        lengths = mask.sum(dim=1)  # [b]
        c = self.config
        keep = torch.tensor(
            [tokens_kept(int(n), c.max_token_drop, c.token_drop_ref_len) for n in lengths], device=media.device
        )  # [b]
        width = int(keep.max())
        # Random scores for real tokens, below any real score for padding: each row's top keep_i
        # scores pick a uniform random subset of its real tokens.
        scores = torch.rand(mask.shape, device=media.device).masked_fill(~mask, -1.0)
        best = scores.argsort(dim=1, descending=True)[:, :width]  # [b, n']
        selected = torch.zeros_like(mask)
        selected.scatter_(1, best, torch.arange(width, device=media.device)[None] < keep[:, None])
        # Gather the selected positions in time order (stable sort puts them first, in order).
        pos = selected.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :width]  # [b, n']
        new_media = media.gather(1, pos[..., None].expand(-1, -1, media.shape[-1]))
        return new_media, selected.gather(1, pos)

    def forward(
        self, patches: torch.Tensor, frame_mask: torch.Tensor, frame_cls: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compress segments.

        Args:
            patches: [b, f, p, d] pooled patch tokens, segments padded to the longest f.
            frame_mask: [b, f] bool, True for real frames (every segment has at least one).
            frame_cls: [b, f, d] per-frame CLS features.
        Returns:
            routing: [b, d] one routing token per segment (fast pathway, SR-Router input).
            latents: [b, l, d] with l = num_latents (focus pathway).
        """
        b, f, p, d = patches.shape
        if p != self.config.tokens_per_frame:
            raise ValueError(f"connector expects {self.config.tokens_per_frame} tokens per frame, got {p}")
        x = patches + self.spatial_embed[None, None] + self._temporal(f)[None, :, None]  # [b, f, p, d]
        media = x.reshape(b, f * p, d)  # [b, n, d]
        mask = frame_mask[:, :, None].expand(b, f, p).reshape(b, f * p)  # [b, n]
        if self.training and self.config.max_token_drop > 0:
            media, mask = self.drop_tokens(media, mask)
        fm = frame_mask[..., None].to(frame_cls.dtype)  # [b, f, 1]
        cls_mean = (frame_cls * fm).sum(1) / fm.sum(1).clamp_min(1)  # [b, d]
        routing = self.routing_latent + cls_mean  # [b, d]
        latents = torch.cat([routing[:, None], self.latents[None].expand(b, -1, -1)], dim=1)  # [b, 1+l, d]
        for attn, ff in self.layers:
            latents = attn(media, latents, mask) + latents
            latents = ff(latents) + latents
        latents = self.norm(latents)
        return latents[:, 0], latents[:, 1:]
