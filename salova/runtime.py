"""Loading the models a command needs, once, on the right device; and the fingerprint they give an index."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from salova.defaults import DEFAULT_ENCODER
from salova.errors import option_problem
from salova.models.encoder import VisionTextEncoder
from salova.models.salova import Salova
from salova.store.records import ModelFingerprint

logger = logging.getLogger(__name__)



def local_or_id(name_or_path: str | Path) -> str:
    """A local model folder as an absolute path (what the index records, valid from any directory); a hub id
    as given."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else str(name_or_path)


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
        config = self.encoder.model.config
        loaded = config._name_or_path
        if name_or_path is not None:
            config._name_or_path = name_or_path
        try:
            h = hashlib.sha256(self.encoder.fingerprint().encode())
        finally:
            config._name_or_path = loaded
        if self.salova is not None:
            h.update(self.salova.weights_digest().encode())
        return h.hexdigest()[:32]


def load_models(
    model: str | Path | None = None,
    encoder: str | Path | None = None,
    device: str = "auto",
    load_llm: bool = False,
) -> Models:
    """Load a SALOVA checkpoint (its encoder unless ``encoder`` overrides) or an encoder alone."""
    dev = resolve_device(device)
    dtype = torch.float16 if dev.type == "cuda" else None
    if model is not None:
        enc = VisionTextEncoder.from_pretrained(local_or_id(encoder), device=dev) if encoder is not None else None
        salova = Salova.from_pretrained(model, device=dev, encoder=enc, load_llm=load_llm, dtype=dtype)
        return Models(salova.encoder, salova, str(Path(model).expanduser().resolve()) if Path(model).exists()
                      else str(model), dev, spelled=str(encoder) if encoder is not None else None)
    enc = VisionTextEncoder.from_pretrained(local_or_id(encoder or DEFAULT_ENCODER), device=dev)
    return Models(enc, None, None, dev, spelled=str(encoder or DEFAULT_ENCODER))
