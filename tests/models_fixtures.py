"""Session-wide tiny random models, saved with save_pretrained and loaded back like a user would."""

from __future__ import annotations

import pytest

from salova.tiny import make_tiny_encoder, make_tiny_llm, make_tiny_salova


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def clip_dir(tiny_dir):
    return make_tiny_encoder(tiny_dir / "clip", "clip")


@pytest.fixture(scope="session")
def siglip_dir(tiny_dir):
    # 70 / 14 = 5x5 patches: an odd grid, pooled bilinearly to 3x3 like SigLIP-384's 27 -> 14.
    return make_tiny_encoder(tiny_dir / "siglip", "siglip", image_size=70)


@pytest.fixture(scope="session")
def llama_dir(tiny_dir):
    return make_tiny_llm(tiny_dir / "llama", "llama")


@pytest.fixture(scope="session")
def qwen_dir(tiny_dir):
    return make_tiny_llm(tiny_dir / "qwen2", "qwen2", chat_template=False)


@pytest.fixture(scope="session")
def salova_dir(tiny_dir, clip_dir, llama_dir):
    return make_tiny_salova(tiny_dir / "salova", clip_dir, llama_dir)


@pytest.fixture(scope="session")
def salova_retrieval_dir(tiny_dir, clip_dir):
    """A checkpoint without an LLM: retrieval only."""
    return make_tiny_salova(tiny_dir / "salova_retrieval", clip_dir, None)
