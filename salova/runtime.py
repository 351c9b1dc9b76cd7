"""Loading the models a command needs, once, on the right device; and the fingerprint they give an index."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from salova.defaults import CPU_ENCODER, DEFAULT_ENCODER
from salova.errors import option_problem
from salova.models.encoder import VisionTextEncoder
from salova.models.salova import Salova
from salova.store.records import ModelFingerprint, model_location

logger = logging.getLogger(__name__)



def local_or_id(name_or_path: str | Path) -> str:
    """A local model folder as an absolute path (what the index records, valid from any directory); a hub id
    as given."""
    return model_location(name_or_path) if Path(name_or_path).expanduser().is_dir() else str(name_or_path)


def moved_model_error(index_dir: Path, kind: str, path: str, field: str) -> Exception:
    """The index names a local model folder that is gone: say how to point at its new place."""
    return option_problem(field, f"needed: the index at {index_dir} was built with the {kind} at {path}, which is "
                          "no longer there; if the folder moved, give its new place (the weights are checked, "
                          "not the path)")


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
    spelled: str | None = None  # the encoder as the user gave it (e.g. a relative path): older digests hashed it

    @property
    def trained(self) -> bool:
        return self.salova is not None

    def fingerprint(self) -> ModelFingerprint:
        """Identity of what produces index vectors: encoder weights and checkpoint weights, not their paths.

        The encoder's config carries the path it was loaded from (``_name_or_path``); the digest leaves it out,
        so a moved model folder keeps its indexes. Indexes written before hashed it in as spelled at load time:
        that digest is kept as an alias, so they still open when the model is given the same way.
        """
        if self._fingerprint is None:
            digest = self._digest("")
            old = {self._digest(None)} | ({self._digest(self.spelled)} if self.spelled else set())
            self._fingerprint = ModelFingerprint(self.encoder.name, self.checkpoint, digest,
                                                 aliases=frozenset(old - {digest}))
        return self._fingerprint

    def _digest(self, name_or_path: str | None) -> str:
        """The digest with the encoder config's load path replaced by ``name_or_path`` (None: as loaded)."""
        loaded = self.encoder._loaded_config
        if name_or_path is not None:
            config = json.loads(loaded)
            config["_name_or_path"] = name_or_path
            self.encoder._loaded_config = json.dumps(config, sort_keys=True, default=str)
        try:
            h = hashlib.sha256(self.encoder.fingerprint().encode())
        finally:
            self.encoder._loaded_config = loaded
        if self.salova is not None:
            h.update(self.salova.weights_digest().encode())
        return h.hexdigest()[:32]


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
        enc = VisionTextEncoder.from_pretrained(local_or_id(encoder), device=dev) if encoder is not None else None
        salova = Salova.from_pretrained(model, device=dev, encoder=enc, load_llm=load_llm, dtype=llm_dtype(dev))
        return Models(salova.encoder, salova, str(Path(model).expanduser().resolve()) if Path(model).exists()
                      else str(model), dev, spelled=str(encoder) if encoder is not None else None)
    if encoder is None:
        encoder, why = default_encoder(dev)
        if note is not None:
            note(f"encoder: {encoder} ({why})")
    enc = VisionTextEncoder.from_pretrained(local_or_id(encoder), device=dev)
    enc.try_low_precision_frames()
    return Models(enc, None, None, dev, spelled=str(encoder))
