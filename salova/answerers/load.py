"""``--answerer ID_OR_DIR_OR_URL`` -> an answerer of the right kind, loaded once.

- ``http://...`` / ``https://...``: an OpenAI-compatible chat server (``openai``); ``model`` names the model;
- a ``.gguf`` file, or a directory holding one ``.gguf`` and no ``config.json``: a text LM (``text-lm``);
- a directory or hub id whose ``config.json`` names an image-text-to-text model (transformers'
  ``AutoModelForImageTextToText`` mapping): a vision-language model (``hf-vlm``); any other: a text LM.
"""

from __future__ import annotations

import logging
from pathlib import Path

import salova.models  # noqa: F401  (sets up the environment transformers' loaders run in)
from salova.answerers.base import Answerer
from salova.errors import option_problem

logger = logging.getLogger(__name__)

ANSWERER_KINDS = ("hf-vlm", "text-lm", "openai")


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def load_answerer(spec: str, *, model: str | None = None, device: str = "auto") -> Answerer:
    """Load the answerer ``spec`` names (see the module docstring). Errors name the ``answerer`` option."""
    spec = (spec or "").strip()
    if not spec:
        raise option_problem("answerer", "is empty")
    if is_url(spec):
        from salova.answerers.openai_endpoint import OpenAIEndpointAnswerer

        return OpenAIEndpointAnswerer(spec, model)
    if model is not None:
        raise option_problem("answerer_model", "only applies to an endpoint URL (http://host:port/v1)")

    from salova.runtime import resolve_device

    dev = resolve_device(device)
    path = Path(spec).expanduser()
    gguf = _gguf_file(path)
    if gguf is not None:
        from salova.answerers.text_lm import TextLMAnswerer

        logger.info("loading text LM %s", gguf)
        return TextLMAnswerer(str(gguf.parent), dev, gguf_file=gguf.name)
    source = str(path) if path.exists() else spec
    if path.exists() and not (path / "config.json").is_file():
        raise option_problem("answerer", f"{spec}: no config.json or .gguf file in this directory")
    if _is_vision_language(source):
        from salova.answerers.hf_vlm import HFVisionLanguageAnswerer

        logger.info("loading vision-language model %s", source)
        return HFVisionLanguageAnswerer(source, dev)
    from salova.answerers.text_lm import TextLMAnswerer

    logger.info("loading text LM %s", source)
    return TextLMAnswerer(source, dev)


def _gguf_file(path: Path) -> Path | None:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise option_problem("answerer", f"{path}: expected a model directory, a .gguf file or a URL")
        return path
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ggufs[0]
        if len(ggufs) > 1:
            raise option_problem("answerer", f"{path}: holds {len(ggufs)} .gguf files; name one")
    return None


def _is_vision_language(source: str) -> bool:
    """Whether ``source``'s config is one of transformers' image-text-to-text models."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise option_problem(
            "answerer", f"{source}: not a model directory, .gguf file, URL or cached hub id ({reason})"
        ) from None
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
