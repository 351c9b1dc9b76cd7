"""Tiny random vision-language models in the layout of real hub checkpoints (no download).

Each builder writes what a hub repository holds: ``config.json`` + ``model.safetensors``, the tokenizer files,
the image processor's ``preprocessor_config.json``, ``processor_config.json`` naming the processor class, and
``chat_template.jinja``. Callers load them back with ``AutoProcessor`` / ``AutoModelForImageTextToText`` (through
``salova.answerers.load_answerer``), the path users' checkpoints take.

- ``make_tiny_qwen2_vl``: Qwen2-VL (dynamic resolution, M-RoPE; a processor with a video half);
- ``make_tiny_idefics3``: Idefics3 / SmolVLM (a SigLIP-style tower, pixel shuffle, a Llama text model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from salova.tiny import make_tokenizer

# Qwen2-VL's template, shortened: images become <|vision_start|><|image_pad|><|vision_end|>.
QWEN2_VL_TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Idefics3's template (as in HuggingFaceM4/Idefics3-8B-Llama3 and SmolVLM).
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _text_config(tokenizer, width: int) -> dict:
    return dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=8192,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)


def _save(path: Path, model, image_processor, tokenizer, processor_class: str, template: str,
          processor_kwargs: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    image_processor.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / "chat_template.jinja").write_text(template)
    (path / "processor_config.json").write_text(
        json.dumps({"processor_class": processor_class, **(processor_kwargs or {})}, indent=2)
    )
    return path


def make_tiny_qwen2_vl(path: str | Path, *, width: int = 64, seed: int = 0) -> Path:
    """A random Qwen2-VL: 14-px patches merged 2x2; images resized to 28..56 px a side (1..4 merged tokens)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = make_tokenizer()
    specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    head_dim = width // 4
    config = Qwen2VLConfig(
        text_config={**_text_config(tokenizer, width),
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                         "mrope_section": [head_dim // 8, head_dim * 3 // 16, head_dim * 3 // 16]}},
        vision_config=dict(depth=2, embed_dim=32, hidden_size=width, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=56 * 56)
    return _save(Path(path), model, image_processor, tokenizer, "Qwen2VLProcessor", QWEN2_VL_TEMPLATE)


def make_tiny_idefics3(path: str | Path, *, width: int = 64, image_size: int = 56, seed: int = 0) -> Path:
    """A random Idefics3: one ``image_size`` tile per image (no splitting), 14-px patches, pixel shuffle 2."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    torch.manual_seed(seed)
    patch, scale = 14, 2
    tokenizer = make_tokenizer()
    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch),
        text_config={"model_type": "llama", **_text_config(tokenizer, width)},
        scale_factor=scale, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                                max_image_size={"longest_edge": image_size})
    seq_len = (image_size // patch) ** 2 // scale**2  # <image> tokens per image
    return _save(Path(path), model, image_processor, tokenizer, "Idefics3Processor", IDEFICS3_TEMPLATE,
                 {"image_seq_len": seq_len})
