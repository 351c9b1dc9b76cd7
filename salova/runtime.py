"""Loading the models a command needs, once, on the right device; and the fingerprint they give an index."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from salova.defaults import CPU_ENCODER, DEFAULT_ENCODER
from salova.errors import option_problem
from salova.models.encoder import VisionTextEncoder
from salova.models.salova import Salova
from salova.store.records import ModelFingerprint

logger = logging.getLogger(__name__)



def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise option_problem("device", f"{device}: no CUDA device is available (use cpu or auto)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise option_problem("device", f"{device!r}: expected auto, cpu, cuda or cuda:N") from None


def llm_dtype(device: torch.device) -> torch.dtype:
    """The LLM's dtype on ``device``: bf16 on a GPU with native bf16 (compute capability 8+; training uses bf16),
    else fp32 (CPU, older GPUs, other devices).

    Never fp16: its range (max 65504) is too small for some LLMs' hidden states (Gemma 3's pass 50,000 and
    overflow to NaN logits), and training never runs in fp16. The vision/text encoder always runs in fp32.
    """
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.bfloat16
    return torch.float32


@dataclass
class Models:
    """An encoder, and a SALOVA checkpoint's trained parts when one was given."""

    encoder: VisionTextEncoder
    salova: Salova | None
    checkpoint: str | None
    device: torch.device
    _fingerprint: ModelFingerprint | None = field(default=None, repr=False)

    @property
    def trained(self) -> bool:
        return self.salova is not None

    def fingerprint(self) -> ModelFingerprint:
        """Identity of what produces index vectors: encoder weights and checkpoint weights, not their paths."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.encoder.fingerprint().encode())
            if self.salova is not None:
                h.update(self.salova.weights_digest().encode())
            self._fingerprint = ModelFingerprint(self.encoder.name, self.checkpoint, h.hexdigest()[:32])
        return self._fingerprint


def default_encoder(device: torch.device) -> tuple[str, str]:
    """(encoder, why) for a device when none was asked for: the paper's on a GPU, a small CLIP on a CPU."""
    if device.type == "cpu":
        return CPU_ENCODER, (f"CPU: the paper's {DEFAULT_ENCODER} takes 1-3 s per frame here, this one about "
                             "0.05 s; --encoder chooses another (an index keeps the encoder it was built with)")
    return DEFAULT_ENCODER, f"{device.type}: the paper's encoder"


def load_models(
    model: str | Path | None = None,
    encoder: str | Path | None = None,
    device: str = "auto",
    load_llm: bool = False,
    note: Callable[[str], None] | None = None,
) -> Models:
    """Load a SALOVA checkpoint (its encoder unless ``encoder`` overrides) or an encoder alone.

    With neither, the device's default encoder (``default_encoder``); ``note`` gets one line saying which and why.
    """
    dev = resolve_device(device)
    if model is not None:
        enc = VisionTextEncoder.from_pretrained(encoder, device=dev) if encoder is not None else None
        salova = Salova.from_pretrained(model, device=dev, encoder=enc, load_llm=load_llm, dtype=llm_dtype(dev))
        return Models(salova.encoder, salova, str(Path(model).expanduser().resolve()) if Path(model).exists()
                      else str(model), dev)
    if encoder is None:
        encoder, why = default_encoder(dev)
        if note is not None:
            note(f"encoder: {encoder} ({why})")
    enc = VisionTextEncoder.from_pretrained(encoder, device=dev)
    enc.try_bf16_frames()
    return Models(enc, None, None, dev)
