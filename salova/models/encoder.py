"""Vision/text encoder: a thin wrapper over any Hugging Face CLIP or SigLIP checkpoint.

Per frame it returns what SALOVA needs downstream:
  - ``patches``: penultimate-layer patch tokens, 2x2 pooled (CLIP-L/14-336: 24x24 -> 12x12 = 144 tokens;
    odd grids such as SigLIP's 27x27 are resized bilinearly to ceil(g/2) = 14x14 = 196 tokens),
  - ``cls``: the penultimate-layer CLS token (SigLIP has none: mean of the patch tokens),
  - ``joint``: the L2-normalised image embedding in the joint image-text space (zero-shot retrieval).
Per text: penultimate-layer token features and the pooled sentence feature (the SR-Router's text), and the
joint-space embedding (zero-shot retrieval).

Router text is long: SceneWalk descriptions average 137 words. As the reference does, the text position table
is extended past the checkpoint's (CLIP: 77 -> 512 tokens, SigLIP: 64 -> 1024) so a long question reaches the
router whole. The original rows are kept; the new rows are drawn N(0, 0.02^2) (the reference's fresh init)
from a fixed seed, so every process that loads the same checkpoint gets the same table. The joint-space
embedding still sees at most the checkpoint's own length (the text as CLIP/SigLIP were trained on it).

Notation: b frames or texts, g patch grid side, p pooled tokens per frame, t text tokens,
d vision width, e text width, j joint-space width.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salova.errors import CheckpointError

logger = logging.getLogger(__name__)

SUPPORTED_TYPES = ("clip", "siglip")
ROUTER_TEXT_TOKENS = {"clip": 512, "siglip": 1024}  # router text length (reference tokenizers' max_length)
NEW_POSITION_SEED = 0  # rows added to the text position table are drawn from this seed
NEW_POSITION_STD = 0.02  # ... with this std (Hugging Face's and the reference's fresh init)
NATIVE_TEXT_KEY = "native_text_positions"  # saved in preprocessor_config.json: the pretrained text length


@dataclass(frozen=True)
class FrameFeatures:
    """Encoder output for a batch of frames."""

    patches: torch.Tensor  # [b, p, d] pooled penultimate-layer patch tokens
    cls: torch.Tensor  # [b, d] penultimate-layer CLS (SigLIP: mean patch)
    joint: torch.Tensor  # [b, j] L2-normalised joint-space image embedding


@dataclass(frozen=True)
class TextFeatures:
    """Encoder output for a batch of texts."""

    tokens: torch.Tensor  # [b, t, e] penultimate-layer token features
    mask: torch.Tensor  # [b, t] bool, True for real tokens
    joint: torch.Tensor  # [b, j] L2-normalised joint-space text embedding
    sentence: torch.Tensor  # [b, e] pooled sentence feature (CLIP: final-layer EOS after its LayerNorm)


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing read from the checkpoint's ``preprocessor_config.json``."""

    size: int  # square input side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop: bool  # CLIP: resize shortest side then centre-crop; SigLIP: plain resize to size x size

    @classmethod
    def from_dir(cls, path: Path | None, model_type: str, image_size: int) -> Preprocess:
        if model_type == "clip":
            defaults = cls(image_size, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), True)
        else:
            defaults = cls(image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False)
        cfg_file = path / "preprocessor_config.json" if path is not None else None
        if cfg_file is None or not cfg_file.is_file():
            return defaults
        cfg = json.loads(cfg_file.read_text())
        return cls(
            size=image_size,  # the model's own input size wins over the processor's
            mean=tuple(cfg.get("image_mean", defaults.mean)),
            std=tuple(cfg.get("image_std", defaults.std)),
            crop=bool(cfg.get("do_center_crop", defaults.crop)),
        )


def _resolve_dir(name_or_path: str | Path) -> Path | None:
    """A local directory, or the snapshot directory of a hub id in the local cache (None if neither)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception:
        return None


class VisionTextEncoder(nn.Module):
    """CLIP or SigLIP image+text encoder with SALOVA's per-frame and per-text outputs."""

    def __init__(
        self, model: nn.Module, tokenizer, preprocess: Preprocess, name: str, native_text_len: int | None = None
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.name = name
        self.model_type: str = model.config.model_type
        vc = model.config.vision_config
        self.grid = vc.image_size // vc.patch_size
        self.vision_width: int = vc.hidden_size
        self.text_width: int = model.config.text_config.hidden_size
        self.joint_width: int = (
            model.config.projection_dim if self.model_type == "clip" else model.config.text_config.hidden_size
        )
        self.pooled_grid = math.ceil(self.grid / 2)
        self.tokens_per_frame = self.pooled_grid**2
        # The checkpoint's config as loaded: the fingerprint ignores the in-memory position extension.
        self._loaded_config = json.dumps(model.config.to_dict(), sort_keys=True, default=str)
        # Text length the encoder was pretrained with (zero-shot embeddings see no more).
        self.native_text_len: int = native_text_len or model.config.text_config.max_position_embeddings
        self.extend_text_positions(ROUTER_TEXT_TOKENS[self.model_type])
        self.max_text_len: int = model.config.text_config.max_position_embeddings  # router text length
        # frames run under this autocast dtype (None: the weights' dtype); weights stay float32, so the
        # fingerprint does not change. Set by try_low_precision_frames after a cosine check.
        self.frames_autocast: torch.dtype | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> VisionTextEncoder:
        """Load a CLIP or SigLIP checkpoint from a local directory or a hub id (cache honoured offline)."""
        from transformers import AutoConfig, AutoTokenizer, CLIPModel, SiglipModel

        name = str(name_or_path)
        local = _resolve_dir(name_or_path)
        source = str(local) if local is not None else name
        try:
            config = AutoConfig.from_pretrained(source)
        except Exception as exc:  # missing dir, no config.json, offline without cache, bad JSON
            raise CheckpointError(f"cannot load encoder '{name}': {_one_line(exc)}") from None
        if config.model_type not in SUPPORTED_TYPES:
            raise CheckpointError(
                f"encoder '{name}' is a '{config.model_type}' model; salova needs a CLIP or SigLIP checkpoint"
            )
        model_cls = CLIPModel if config.model_type == "clip" else SiglipModel
        try:
            model = model_cls.from_pretrained(source, dtype=dtype or torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as exc:
            raise CheckpointError(f"cannot load encoder '{name}': {_one_line(exc)}") from None
        preprocess = Preprocess.from_dir(local, config.model_type, config.vision_config.image_size)
        native = None
        if local is not None and (local / "preprocessor_config.json").is_file():
            native = json.loads((local / "preprocessor_config.json").read_text()).get(NATIVE_TEXT_KEY)
        enc = cls(model.eval(), tokenizer, preprocess, name, native_text_len=native)
        enc.requires_grad_(False)
        return enc.to(device)

    def save_pretrained(self, path: str | Path) -> None:
        path = Path(path)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        p = self.preprocess
        cfg = {"image_mean": list(p.mean), "image_std": list(p.std), "do_center_crop": p.crop, "size": p.size,
               NATIVE_TEXT_KEY: self.native_text_len}
        (path / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2))

    def fingerprint(self) -> str:
        """A short digest of the encoder's config and weights (first values of each tensor: cheap).

        Independent of where the encoder lives, so a moved directory keeps its index valid.
        """
        h = hashlib.sha256()
        h.update(self._loaded_config.encode())
        for key, value in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().flatten()[:64].float().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ images
    def pixel_values(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """RGB uint8 frames [b, h, w, 3] -> normalised pixel values [b, 3, s, s] on the encoder's device.

        On CPU, uint8 numpy frames are resized in uint8 by OpenCV (area averaging when shrinking, bicubic
        when enlarging) and only the small result becomes float: about 10x cheaper than resizing full-size
        float frames, and within cosine 0.999 of it on the joint embedding (docs/benchmarks.md). Tensors,
        and frames for a GPU encoder, take the torch path (antialiased bicubic on the device).
        """
        if isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and self.device.type == "cpu":
            x = torch.from_numpy(np.stack([self._resize_uint8(f) for f in frames]))  # [b, s, s, 3] uint8
            x = x.permute(0, 3, 1, 2).float().div_(255.0)  # [b, 3, s, s]
        else:
            x = torch.as_tensor(frames)
            if self.device.type == "cuda" and x.device.type == "cpu":
                # page-locked staging: the copy runs as DMA, overlapping what the host does next
                x = x.pin_memory().to(self.device, non_blocking=True)
            x = self._resize_float(x.to(self.device))
        mean = torch.tensor(self.preprocess.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess.std, device=x.device).view(1, 3, 1, 1)
        return ((x.clamp_(0, 1) - mean) / std).to(self.dtype)

    def _target_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) before the centre crop (CLIP: shortest side to s) or the final size (SigLIP)."""
        size = self.preprocess.size
        if not self.preprocess.crop:
            return size, size
        scale = size / min(h, w)
        return max(size, round(h * scale)), max(size, round(w * scale))

    def _resize_uint8(self, frame: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame [h, w, 3] -> [s, s, 3] uint8 (resized, centre-cropped for CLIP)."""
        import cv2

        h, w = frame.shape[:2]
        nh, nw = self._target_size(h, w)
        interp = cv2.INTER_AREA if nh <= h and nw <= w else cv2.INTER_CUBIC
        x = cv2.resize(frame, (nw, nh), interpolation=interp)
        size = self.preprocess.size
        top, left = (nh - size) // 2, (nw - size) // 2
        return x[top : top + size, left : left + size]

    def _resize_float(self, frames: torch.Tensor) -> torch.Tensor:
        """RGB uint8 frames [b, h, w, 3] on any device -> float [b, 3, s, s] in [0, 1] (antialiased)."""
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # [b, 3, h, w]
        size = self.preprocess.size
        nh, nw = self._target_size(*x.shape[-2:])
        if self.preprocess.crop:
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
            top, left = (nh - size) // 2, (nw - size) // 2
            return x[..., top : top + size, left : left + size]
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> FrameFeatures:
        """Encode RGB uint8 frames [b, h, w, 3] into pooled patches, CLS and joint embeddings.

        Gradients flow only into parameters that require them (the encoder is frozen by default);
        callers that only infer wrap this in ``torch.inference_mode()``.
        """
        return self._encode_frames(frames)

    def _encode_frames(self, frames: np.ndarray | torch.Tensor) -> FrameFeatures:
        pixels = self.pixel_values(frames)
        low = self.frames_autocast
        with torch.autocast(self.device.type, dtype=low or torch.bfloat16, enabled=low is not None):
            out = self.model.vision_model(pixel_values=pixels, output_hidden_states=True)
        hidden = out.hidden_states[-2]  # [b, (1 +) g*g, d]
        if self.model_type == "clip":
            cls_tok, patches = hidden[:, 0], hidden[:, 1:]
            joint = self.model.visual_projection(out.pooler_output.to(self.dtype))
        else:
            patches = hidden
            cls_tok = hidden.mean(dim=1)
            joint = out.pooler_output
        patches, cls_tok = patches.to(self.dtype), cls_tok.to(self.dtype)
        b, n, d = patches.shape
        g = self.grid
        grid = patches.transpose(1, 2).reshape(b, d, g, g)  # [b, d, g, g]
        if g % 2 == 0:
            grid = F.avg_pool2d(grid, 2)
        else:
            grid = F.interpolate(grid, size=(self.pooled_grid, self.pooled_grid), mode="bilinear", align_corners=False)
        pooled = grid.flatten(2).transpose(1, 2)  # [b, p, d]
        return FrameFeatures(patches=pooled, cls=cls_tok, joint=F.normalize(joint.float(), dim=-1))

    @property
    def bf16_frames(self) -> bool:
        """Frames run under bf16 autocast."""
        return self.frames_autocast == torch.bfloat16

    @bf16_frames.setter
    def bf16_frames(self, on: bool) -> None:
        self.frames_autocast = torch.bfloat16 if on else None

    def try_low_precision_frames(self, min_cosine: float = 0.999) -> torch.dtype | None:
        """Encode frames under half-precision autocast when the device has fast kernels for it and the joint
        embedding of a test image stays within ``min_cosine`` of float32's (measured here, with these weights).

        CPU: bf16 where the CPU has native bf16 kernels (without them bf16 is slower than float32). CUDA: bf16
        where the GPU supports it, else fp16 (SDPA then runs its flash kernels). Returns the dtype chosen, or
        None (float32).
        """
        self.frames_autocast = None
        if self.dtype != torch.float32:
            return None
        if self.device.type == "cpu":
            candidate = torch.bfloat16 if _cpu_bf16() else None
        elif self.device.type == "cuda":
            candidate = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            candidate = None
        if candidate is None:
            return None
        rng = np.random.default_rng(0)
        size = self.preprocess.size
        frame = np.repeat(np.repeat(rng.integers(0, 256, (2, size // 8, size // 8, 3), np.uint8), 8, 1), 8, 2)
        with torch.inference_mode():
            ref = self._encode_frames(frame).joint
            self.frames_autocast = candidate
            low = self._encode_frames(frame).joint
        cosine = float((ref * low).sum(-1).min())
        self.frames_autocast = candidate if cosine >= min_cosine else None
        logger.info("%s frames: cosine %.5f vs float32 -> %s", str(candidate).removeprefix("torch."), cosine,
                    "on" if self.frames_autocast else "off")
        return self.frames_autocast

    # ------------------------------------------------------------------ text
    def extend_text_positions(self, length: int) -> None:
        """Grow the text position table to ``length`` rows (no-op if it has them); see the module docstring."""
        emb = self.model.text_model.embeddings
        old = emb.position_embedding.weight
        if old.shape[0] >= length:
            return
        gen = torch.Generator().manual_seed(NEW_POSITION_SEED)
        rows = torch.randn(length, old.shape[1], generator=gen) * NEW_POSITION_STD  # [length, e]
        rows[: old.shape[0]] = old.detach().float().cpu()
        table = nn.Embedding(length, old.shape[1], device=old.device, dtype=old.dtype)
        with torch.no_grad():
            table.weight.copy_(rows)
        table.weight.requires_grad_(old.requires_grad)
        emb.position_embedding = table
        emb.register_buffer("position_ids", torch.arange(length, device=old.device)[None], persistent=False)
        for cfg in {id(c): c for c in (self.model.config.text_config, getattr(self.model.text_model, "config", None))
                    if c is not None}.values():
            cfg.max_position_embeddings = length

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Token ids and attention mask [b, t], cut at ``max_length`` (default: the router text length).

        CLIP pads to the longest text. SigLIP pads to its pretrained length (64), as it was trained, or to the
        longest text when that is longer.
        """
        limit = max_length or self.max_text_len
        padding = "longest"
        if self.model_type == "siglip":
            longest = max(len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=limit)["input_ids"])
            limit = max(min(self.native_text_len, limit), longest)
            padding = "max_length"
        enc = self.tokenizer(texts, padding=padding, truncation=True, max_length=limit, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def encode_text(self, texts: list[str]) -> TextFeatures:
        """Encode texts into penultimate-layer token features [b, t, e], sentence features [b, e] and joint
        embeddings [b, j]. Texts up to the router length (512 / 1024 tokens) are seen whole by the router.

        SigLIP attends to its padding (it has no text mask), so when a text is longer than 64 tokens each text is
        encoded on its own: a text's features never depend on the others in the batch.
        """
        if self.model_type == "siglip" and len(texts) > 1 and max(self._lengths(texts)) > self.native_text_len:
            parts = [self.encode_text([t]) for t in texts]
            t = max(p.tokens.shape[1] for p in parts)
            tokens = torch.cat([F.pad(p.tokens, (0, 0, 0, t - p.tokens.shape[1])) for p in parts])
            mask = torch.cat([F.pad(p.mask, (0, t - p.mask.shape[1])) for p in parts])
            return TextFeatures(tokens, mask, torch.cat([p.joint for p in parts]),
                                torch.cat([p.sentence for p in parts]))
        tokens, mask, sentence, joint = self._run_text(texts, self.max_text_len)
        long = [i for i, n in enumerate(self._lengths(texts)) if n > self.native_text_len]
        if long:  # the joint space sees the text as the encoder was trained on it: cut at its own length
            joint = joint.clone()
            joint[long] = self._run_text([texts[i] for i in long], self.native_text_len)[3]
        return TextFeatures(tokens=tokens, mask=mask, joint=joint, sentence=sentence)

    def _lengths(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_text_len)["input_ids"]]

    def _run_text(self, texts: list[str], max_length: int):
        """One text-tower pass -> tokens [b, t, e], mask [b, t], sentence [b, e], joint [b, j] (normalised)."""
        enc = self.tokenize(texts, max_length)
        ids = enc["input_ids"]
        mask = enc.get("attention_mask")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        if self.model_type == "siglip":
            # SigLIP was trained on max-length padding without a mask; pass none, as its processor does.
            out = self.model.text_model(input_ids=ids, output_hidden_states=True)
            sentence = joint = out.pooler_output
            eos = self.tokenizer.eos_token_id
            if eos is not None:  # the router's keys end at the first EOS, as in the reference
                is_eos = ids == eos
                first = torch.where(is_eos.any(1), is_eos.int().argmax(1), ids.shape[1] - 1)  # [b]
                mask = mask & (torch.arange(ids.shape[1], device=ids.device)[None] <= first[:, None])
        else:
            out = self.model.text_model(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True)
            sentence = out.pooler_output  # final-layer EOS after the final LayerNorm (the reference's text_cls)
            joint = self.model.text_projection(out.pooler_output)
        return out.hidden_states[-2], mask, sentence, F.normalize(joint.float(), dim=-1)


def _cpu_bf16() -> bool:
    """Whether this CPU has native bf16 matrix kernels (AVX512-BF16 / AMX): without them bf16 is slower."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
