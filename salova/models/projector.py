"""Projector: connector width -> LLM width, a 2-layer MLP with GELU (LLaVA's ``mlp2x_gelu``)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass
class ProjectorConfig:
    in_dim: int = 1024  # connector width
    out_dim: int = 3072  # LLM hidden size (Llama-3.2-3B: 3072)


class Projector(nn.Sequential):
    """[..., in_dim] -> [..., out_dim]."""

    def __init__(self, config: ProjectorConfig):
        super().__init__(nn.Linear(config.in_dim, config.out_dim), nn.GELU(), nn.Linear(config.out_dim, config.out_dim))
        self.config = config
