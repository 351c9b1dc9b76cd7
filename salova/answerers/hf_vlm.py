"""A Hugging Face vision-language model reading the moments' frames (transformers' auto classes).

Loaded as users load any such checkpoint: ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a local
directory or a hub id (offline: from the local cache). Qwen2-VL / Qwen2.5-VL, LLaVA-OneVision, SmolVLM2 and
Idefics3 checkpoints are the families documented in docs/answerers.md. The prompt goes through the
processor's own chat template with the frames as images, each labelled with its time.

transformers 5 builds the video half of some processors (Qwen2-VL, LLaVA-OneVision, SmolVLM2) with
torchvision. salova sends images only, so where torchvision is missing the processor is built from its
image processor and tokenizer alone (``_image_only_processor``) instead of failing.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import torch

from salova.answerers.base import Answerer, AnswerRequest
from salova.answerers.prompt import build_prompt
from salova.errors import CheckpointError

logger = logging.getLogger(__name__)


class HFVisionLanguageAnswerer(Answerer):
    kind = "hf-vlm"
    reads_frames = True

    def __init__(self, source: str, device: torch.device, dtype: torch.dtype | None = None):
        from transformers import AutoModelForImageTextToText

        self.name = source
        self.device = device
        self.processor = load_processor(source)
        try:
            self.model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype or default_dtype(device))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{source}: cannot load the vision-language model ({_first_line(exc)})") from None
        self.model.to(device).eval()

    def messages(self, request: AnswerRequest) -> list[dict]:
        """Chat messages in the processor's format: text parts and PIL images, in prompt order."""
        from PIL import Image

        frames = [f for m in request.moments for f in m.frames]
        prompt = build_prompt(request)
        content = [{"type": "text", "text": p.text} if p.kind == "text"
                   else {"type": "image", "image": Image.fromarray(frames[p.image])} for p in prompt.parts]
        # The system text opens the user turn: several VLM chat templates reject a system turn with images.
        content = [{"type": "text", "text": prompt.system + "\n\n"}, *content] if content else content
        return [{"role": "user", "content": _merge_text(content)}]

    def answer(self, request: AnswerRequest, max_new_tokens: int = 256) -> str:
        inputs = self.processor.apply_chat_template(
            self.messages(request), add_generation_prompt=True, tokenize=True, return_dict=True,
            return_tensors="pt",
        ).to(self.device)
        if "pixel_values" in inputs and self.model.dtype != inputs["pixel_values"].dtype:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]  # [1, t] the generated tokens only
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()

    def close(self) -> None:
        self.model = None


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it, fp16 on other GPUs, fp32 on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_processor(source: str):
    """``AutoProcessor.from_pretrained(source)``; without torchvision, the same processor with images only."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise
        logger.info("%s: torchvision is missing; building the processor for images only", source)
        return _image_only_processor(source)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot load the processor ({_first_line(exc)})") from None


def _image_only_processor(source: str):
    """The checkpoint's processor class built from its image processor and tokenizer, video half left out."""
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.utils import cached_file

    name, saved = None, {}
    for file in ("processor_config.json", "preprocessor_config.json"):
        path = cached_file(source, file, _raise_exceptions_for_missing_entries=False)
        if path and (name := (saved := json.loads(Path(path).read_text())).get("processor_class")):
            break
    cls = getattr(transformers, name or "", None)
    if cls is None:
        raise CheckpointError(f"{source}: names no processor class; cannot build it without torchvision")
    # The processor's own saved settings (e.g. LLaVA-OneVision's num_image_tokens), as from_pretrained passes them.
    params = inspect.signature(cls.__init__).parameters
    skip = {*cls.get_attributes(), "chat_template"}
    settings = {k: v for k, v in saved.items() if k in params and k not in skip}

    def check(self, attribute, value):  # the video processor is allowed to be absent
        if attribute == "video_processor" and value is None:
            return None
        return cls.check_argument_for_proper_class(self, attribute, value)

    image_only = type(cls.__name__, (cls,), {"check_argument_for_proper_class": check})
    kwargs = {"video_processor": None} if "video_processor" in cls.get_attributes() else {}
    template = _chat_template(source)
    return image_only(image_processor=AutoImageProcessor.from_pretrained(source),
                      tokenizer=AutoTokenizer.from_pretrained(source), chat_template=template, **kwargs, **settings)


def _chat_template(source: str) -> str | None:
    """The processor's chat template as saved (``chat_template.jinja``, or ``chat_template.json``)."""
    from transformers.utils import cached_file

    path = cached_file(source, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
    if path:
        return Path(path).read_text()
    path = cached_file(source, "chat_template.json", _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text()).get("chat_template") if path else None


def _merge_text(content: list[dict]) -> list[dict]:
    """Adjacent text parts as one."""
    out: list[dict] = []
    for c in content:
        if c["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + c["text"]}
        else:
            out.append(c)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

