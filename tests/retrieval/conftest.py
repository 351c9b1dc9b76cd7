"""An independent text encoder for the retrieval tests: plain ``transformers`` CLIP, not salova's wrapper."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def text_joint(clip_dir):
    """question -> its L2-normalised joint-space vector [j], from transformers' CLIPModel directly."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(clip_dir)

    def encode(text: str) -> np.ndarray:
        with torch.no_grad():
            ids = tokenizer([text], return_tensors="pt")
            out = model.text_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
            v = model.text_projection(out.pooler_output)[0].numpy().astype(np.float64)
        return v / np.linalg.norm(v)

    return encode
