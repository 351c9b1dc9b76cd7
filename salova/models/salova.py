"""SALOVA: encoder + ST-Connector + SR-Router + projector + FocusFast LLM, and its checkpoint format.

A checkpoint is a directory:
    config.json         SalovaConfig (encoder/LLM names, part configs)
    model.safetensors   connector.*, router.*, projector.* weights
    encoder/            optional: a fine-tuned encoder (else ``config.encoder`` is loaded)
    llm/                optional: a fine-tuned LLM (else ``config.llm`` is loaded)
Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from salova.defaults import DEFAULT_ENCODER, DEFAULT_LLM
from salova.errors import CheckpointError
from salova.models.connector import ConnectorConfig, STConnector
from salova.models.encoder import TextFeatures, VisionTextEncoder, _resolve_dir
from salova.models.focusfast import FocusFastConfig, FocusFastLM, select_focus, visual_tokens
from salova.models.projector import Projector, ProjectorConfig
from salova.models.router import RouterConfig, SegmentRouter

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 2  # 2: the SR-Router layer of the reference (DETR-style positions, no global token)


@dataclass
class SalovaConfig:
    encoder: str = DEFAULT_ENCODER  # CLIP/SigLIP hub id or local dir (paper: CLIP-L/14-336)
    llm: str | None = DEFAULT_LLM  # causal LM; None = retrieval only
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    focusfast: FocusFastConfig = field(default_factory=FocusFastConfig)
    sample_fps: float = 1.0  # frames per second fed to the encoder

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> SalovaConfig:
        d = dict(d)
        d.pop("format_version", None)
        parts = {"connector": ConnectorConfig, "router": RouterConfig, "projector": ProjectorConfig,
                 "focusfast": FocusFastConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        for key, kind in parts.items():
            if key in d:
                d[key] = kind(**d[key])
        return cls(**d)


def config_for_encoder(encoder: VisionTextEncoder, llm_hidden: int | None = None, **overrides) -> SalovaConfig:
    """Paper defaults with the dimensions that depend on the encoder (and LLM) filled in."""
    d = encoder.vision_width
    connector = ConnectorConfig(dim=d, tokens_per_frame=encoder.tokens_per_frame, **overrides.pop("connector", {}))
    router = RouterConfig(routing_dim=d, text_dim=encoder.text_width, **overrides.pop("router", {}))
    projector = ProjectorConfig(in_dim=d, out_dim=llm_hidden or d)
    return SalovaConfig(encoder=encoder.name, connector=connector, router=router, projector=projector, **overrides)


class Salova(nn.Module):
    """The SALOVA model. ``encoder`` and ``llm`` are optional so retrieval can run without an LLM."""

    def __init__(
        self, config: SalovaConfig, encoder: VisionTextEncoder | None = None, llm: FocusFastLM | None = None
    ):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.llm = llm
        self.connector = STConnector(config.connector)
        self.router = SegmentRouter(config.router)
        self.projector = Projector(config.projector)
        if encoder is not None:
            self._check_encoder(encoder)
        if llm is not None and llm.hidden_size != config.projector.out_dim:
            raise CheckpointError(
                f"LLM '{llm.name}' has width {llm.hidden_size}, the projector outputs {config.projector.out_dim}"
            )
        self.checkpoint_path: Path | None = None
        self._digest: str | None = None

    def _check_encoder(self, enc: VisionTextEncoder) -> None:
        c = self.config
        problems = []
        if enc.vision_width != c.connector.dim:
            problems.append(f"vision width {enc.vision_width} != connector dim {c.connector.dim}")
        if enc.tokens_per_frame != c.connector.tokens_per_frame:
            problems.append(f"{enc.tokens_per_frame} tokens/frame != connector's {c.connector.tokens_per_frame}")
        if enc.text_width != c.router.text_dim:
            problems.append(f"text width {enc.text_width} != router text_dim {c.router.text_dim}")
        if problems:
            raise CheckpointError(f"encoder '{enc.name}' does not fit this checkpoint: " + "; ".join(problems))

    # ------------------------------------------------------------------ parts
    def trainable_parts(self) -> dict[str, nn.Module]:
        return {"connector": self.connector, "router": self.router, "projector": self.projector}

    @property
    def device(self) -> torch.device:
        """Where the trained parts live (inputs are moved here)."""
        return self.router.logit_scale.device

    def compress(
        self, patches: torch.Tensor, cls: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ST-Connector: segments -> (routing tokens, latents). The one place the connector is called.

        patches [b, f, p, d], cls [b, f, d] frame CLS features, mask [b, f] (True = a real frame; default all)
        -> routing [b, d], latents [b, l, d]. Inputs are moved to the model's device and dtype; dynamic token
        drop applies in training mode only (the connector's own rule).
        """
        dev, dtype = self.device, next(self.connector.parameters()).dtype
        if mask is None:
            mask = torch.ones(patches.shape[:2], dtype=torch.bool)
        return self.connector(patches.to(dev, dtype), mask.to(dev), cls.to(dev, dtype))

    def score(
        self, routing: torch.Tensor, question: str | TextFeatures, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """SR-Router scores: the one place the router is called (indexing, asking, searching and training).

        routing [n, d] (one video) or [b, n, d] (a padded batch of videos, ``mask`` [b, n] True = a real segment);
        question: a text, or text features of one question (shared by the batch) or of q questions about one
        video. Returns [n] (one video, one question), [b, n] (b videos) or [q, n] (q questions).
        """
        text = self.encoder.encode_text([question]) if isinstance(question, str) else question
        single = routing.dim() == 2
        routing = routing[None] if single else routing  # [b, n, d]
        q, dev = text.tokens.shape[0], self.device
        b = max(routing.shape[0], q)
        routing = routing.to(dev, next(self.router.parameters()).dtype).expand(b, -1, -1)
        tokens = text.tokens.to(dev).expand(b, -1, -1)  # [b, t, d_text]
        tmask = text.mask.to(dev).expand(b, -1)
        sentence = text.sentence.to(dev).expand(b, -1)
        if mask is not None:
            mask = mask.to(dev).expand(b, -1)
        scores = self.router(routing, tokens, tmask, sentence, mask)
        return scores[0] if single and q == 1 else scores

    def answer(
        self, question: str, routing: torch.Tensor, latents, scores: torch.Tensor,
        max_new_tokens: int = 256, top_k: int | None = None,
    ) -> str:
        """FocusFast generation from stored routing tokens [n, d] and latents [n, l, d].

        ``latents`` may be a (memory-mapped) numpy array: only the top-K focus segments are read.
        ``top_k`` defaults to the checkpoint's (paper: 5).
        """
        if self.llm is None:
            raise CheckpointError("this checkpoint has no LLM; answers need one (config 'llm')")
        focus = select_focus(scores, top_k or self.config.focusfast.top_k)  # [k], time order
        dev = self.device
        focus_latents = torch.as_tensor(np.asarray(latents[focus.numpy()], dtype=np.float32))  # [k, l, d]
        with torch.inference_mode():
            visual = visual_tokens(self.projector, focus_latents.to(dev), routing.to(dev).float(),
                                   torch.arange(len(focus), device=dev))
        return self.llm.generate(question, visual, max_new_tokens=max_new_tokens)

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict:
        """Identity of what produced index vectors: the encoder, plus the checkpoint weights if any."""
        enc = self.encoder.fingerprint() if self.encoder is not None else ""
        return {"encoder": self.config.encoder, "encoder_digest": enc, "checkpoint_digest": self.weights_digest()}

    def weights_digest(self) -> str:
        if self._digest is None:
            h = hashlib.sha256()
            for key, value in sorted(self._own_state().items()):
                h.update(key.encode())
                h.update(value.detach().float().cpu().numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def _own_state(self) -> dict[str, torch.Tensor]:
        state = {}
        for name, part in self.trainable_parts().items():
            for key, value in part.state_dict().items():
                state[f"{name}.{key}"] = value
        return state

    # ------------------------------------------------------------------ checkpoint
    def save_pretrained(self, path: str | Path, *, save_encoder: bool = False, save_llm: bool = False) -> Path:
        """Write config.json + model.safetensors (and fine-tuned encoder/LLM subfolders when asked)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.config.to_dict()
        if save_encoder and self.encoder is not None:
            self.encoder.save_pretrained(path / "encoder")
        if save_llm and self.llm is not None:
            self.llm.save_pretrained(path / "llm")
        state = {k: v.detach().contiguous().cpu() for k, v in self._own_state().items()}
        tmp = path / (WEIGHTS_NAME + ".tmp")
        save_file(state, str(tmp), metadata={"format": "pt", "salova_format": str(FORMAT_VERSION)})
        tmp.replace(path / WEIGHTS_NAME)
        (path / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n")
        self._digest = None
        return path

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        load_encoder: bool = True,
        load_llm: bool = True,
        encoder: VisionTextEncoder | None = None,
        dtype: torch.dtype | None = None,
    ) -> Salova:
        """Load a checkpoint directory (or cached hub id). Errors name the path and what is wrong."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        root = _resolve_dir(name_or_path)
        if root is None:
            raise CheckpointError(f"no SALOVA checkpoint at '{name_or_path}' (not a directory or cached hub id)")
        cfg_file, weights = root / CONFIG_NAME, root / WEIGHTS_NAME
        for f in (cfg_file, weights):
            if not f.is_file():
                raise CheckpointError(f"incomplete SALOVA checkpoint: {f} is missing")
        try:
            raw = json.loads(cfg_file.read_text())
            version = int(raw.get("format_version", 1)) if isinstance(raw, dict) else None
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"corrupt checkpoint config {cfg_file}: {exc}") from None
        if version is not None and version < FORMAT_VERSION:
            raise CheckpointError(
                f"{root} is a format-{version} SALOVA checkpoint: its SR-Router weights do not fit this salova's "
                f"router (format {FORMAT_VERSION}, the reference layer); retrain it with `salova train`"
            )
        try:
            config = SalovaConfig.from_dict(raw)
        except (ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"corrupt checkpoint config {cfg_file}: {exc}") from None
        if encoder is None and load_encoder:
            enc_src = root / "encoder" if (root / "encoder" / CONFIG_NAME).is_file() else config.encoder
            encoder = VisionTextEncoder.from_pretrained(enc_src, device=device)
        llm = None
        if load_llm and config.llm:
            llm_src = root / "llm" if (root / "llm" / CONFIG_NAME).is_file() else config.llm
            llm = FocusFastLM.from_pretrained(str(llm_src), device=device, dtype=dtype)
        model = cls(config, encoder=encoder, llm=llm)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"corrupt checkpoint weights {weights}: {exc}") from None
        for name, part in model.trainable_parts().items():
            prefix = name + "."
            sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                part.load_state_dict(sub, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                msg = f"checkpoint weights {weights} do not match its config ({name}): {first}"
                raise CheckpointError(msg) from None
        model.checkpoint_path = root
        for name in model.trainable_parts():
            getattr(model, name).to(device)
        return model.eval()
