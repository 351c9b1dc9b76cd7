"""Tiny random models for tests, benchmarks and demos (no download: everything is built from configs).

Each builder writes a real Hugging Face checkpoint directory with ``save_pretrained`` so that callers
load it back through the same ``from_pretrained`` path users hit.
"""

from __future__ import annotations

from pathlib import Path

import torch

import salova.models  # noqa: F401  (sets up the environment transformers' loaders run in)

# A small corpus for the byte-level BPE: any text tokenizes (every byte is in the alphabet).
_CORPUS = [
    "when does the speaker derive the gradient",
    "what color is the car in the video",
    "a dog catching a frisbee in the park",
    "the red green blue yellow segment scene frame moment",
    "question answer describe summarize who where why how which",
    "0 1 2 3 4 5 6 7 8 9 abcdefghijklmnopqrstuvwxyz",
]

# Gemma's layout: turns end with <end_of_turn>, which is not EOS.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
GEMMA_TURN_TOKENS = ("<start_of_turn>", "<end_of_turn>")

LLM_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer(vocab_size: int = 320, *, bos: str = "<s>", eos: str = "</s>", add_bos_eos: bool = False,
                   extra_specials: tuple[str, ...] = ()):
    """A byte-level BPE fast tokenizer trained on a tiny corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", bos, eos, *extra_specials]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    if add_bos_eos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token="<pad>", unk_token="<unk>"
    )


def make_tiny_encoder(path: str | Path, kind: str = "clip", *, width: int = 32, image_size: int = 56,
                      patch_size: int = 14, seed: int = 0) -> Path:
    """A random CLIP or SigLIP with ``(image_size/patch_size)`` patches per side; saved to ``path``."""
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    torch.manual_seed(seed)
    tokenizer = make_tokenizer(add_bos_eos=(kind == "clip"))
    text = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=2,
                vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    vision = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=patch_size)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, "max_position_embeddings": 77}, vision_config=vision,
                                     projection_dim=width))
    elif kind == "siglip":
        model = SiglipModel(SiglipConfig(text_config={**text, "max_position_embeddings": 64}, vision_config=vision))
    else:
        raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_llm(path: str | Path, kind: str = "llama", *, width: int = 64, chat_template: bool | str = True,
                  special_tokens: tuple[str, ...] = (), seed: int = 0) -> Path:
    """A random Llama- or Qwen2-style causal LM with a byte-level tokenizer; saved to ``path``.

    ``chat_template``: True for ``LLM_CHAT_TEMPLATE``, a template string, or False for none (a base model);
    ``special_tokens``: extra special tokens the template uses (e.g. ``GEMMA_TURN_TOKENS``).
    """
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    tokenizer = make_tokenizer(extra_specials=special_tokens)
    if chat_template:
        tokenizer.chat_template = LLM_CHAT_TEMPLATE if chat_template is True else chat_template
    common = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=4096,
                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(f"kind must be 'llama' or 'qwen2', got {kind!r}")
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_tiny_gguf(path: str | Path, llm_dir: str | Path, *, chat_template: str | None = None) -> Path:
    """Write the Llama from ``make_tiny_llm(llm_dir, "llama")`` as a float32 GGUF file, as llama.cpp would.

    Q/K rows are permuted into llama.cpp's rotary layout (transformers' GGUF loader undoes it), the byte-level
    BPE tokenizer goes in as a "gpt2" vocabulary with its merges, special tokens marked as control tokens.
    """
    import json

    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(llm_dir)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    c = model.config
    if c.model_type != "llama":
        raise ValueError(f"make_tiny_gguf writes Llama models, got {c.model_type!r}")
    head_dim = c.hidden_size // c.num_attention_heads

    def rotary_layout(w: torch.Tensor, heads: int) -> torch.Tensor:  # HF halves -> llama.cpp interleaved pairs
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("salova tiny llama")
    writer.add_context_length(c.max_position_embeddings)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_embedding_length(c.hidden_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    specials = set(tok.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t, _ in vocab])
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tok.bos_token_id)
    writer.add_eos_token_id(tok.eos_token_id)
    writer.add_pad_token_id(tok.pad_token_id)
    writer.add_unk_token_id(tok.unk_token_id)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)
    for name, w in model.state_dict().items():
        w = w.detach().float()
        if name.endswith("q_proj.weight"):
            w = rotary_layout(w, c.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            w = rotary_layout(w, c.num_key_value_heads)
        base, suffix = name.rsplit(".", 1)
        writer.add_tensor(f"{names.get_name(base)}.{suffix}", w.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def make_tiny_salova(path: str | Path, encoder_dir: str | Path, llm_dir: str | Path | None = None, *,
                     num_latents: int = 8, d_model: int | None = None, seed: int = 0, router: dict | None = None,
                     **connector) -> Path:
    """A random SALOVA checkpoint over a tiny encoder (and LLM) with small connector/router sizes.

    ``router`` and ``connector`` keyword arguments override the small sizes (any field of their configs).
    """
    from salova.models.encoder import VisionTextEncoder
    from salova.models.focusfast import FocusFastLM
    from salova.models.salova import Salova, config_for_encoder

    encoder = VisionTextEncoder.from_pretrained(encoder_dir)
    llm = FocusFastLM.from_pretrained(str(llm_dir)) if llm_dir is not None else None
    d = encoder.vision_width
    config = config_for_encoder(
        encoder,
        llm_hidden=llm.hidden_size if llm else None,
        connector={"num_latents": num_latents, "dim_head": 16, "max_frames": 64, **connector},
        router={"d_model": d_model or d, "max_segments": 64, "max_text_positions": 128, **(router or {})},
    )
    config.encoder = str(encoder_dir)
    config.llm = str(llm_dir) if llm_dir is not None else None
    torch.manual_seed(seed)
    model = Salova(config, encoder=encoder, llm=llm)
    return model.save_pretrained(path)
