"""FocusFast: feed the LLM the top-K segments in detail and every segment in brief (paper Sec. 4.1.3).

Focus pathway: the projected ``num_latents`` latents of each of the top-K segments (router score),
put back in time order. Fast pathway: the projected routing token of every segment. The visual tokens
(focus, then fast) replace a placeholder in the user turn of the LLM's chat template, before the question
(``salova.models.chat``: prompt, training target and stop markers all come from the template).

The LLM is any Hugging Face causal LM: a hub id, a folder, or a GGUF file (or a folder holding one GGUF),
loaded through transformers' ``gguf_file=`` support and dequantized so it trains and saves like any other.

Notation: n segments, k focus segments, l latents per segment, d connector width, D LLM width, s tokens.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from salova.errors import CheckpointError, NonFiniteLogitsError
from salova.models.chat import ChatFormat

VIDEO_PLACEHOLDER = "<video>"


@dataclass
class FocusFastConfig:
    top_k: int = 5  # focus segments (paper: 5)
    max_length: int = 8192  # LLM context used in training (paper: 8192)


def select_focus(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the top-k scores [n] -> [min(k, n)] long, ascending (time order)."""
    k = min(k, scores.shape[0])
    return scores.topk(k).indices.sort().values


def visual_tokens(
    projector: nn.Module, latents: torch.Tensor, routing: torch.Tensor, focus: torch.Tensor
) -> torch.Tensor:
    """Project focus latents and all routing tokens.

    Args:
        latents: [n, l, d] latents of all segments (or of any superset indexed by ``focus``).
        routing: [n, d] routing tokens of every segment.
        focus: [k] indices into ``latents``, in time order.
    Returns:
        [k*l + n, D] visual tokens: focus first, then fast.
    """
    focus_tokens = latents[focus].flatten(0, 1)  # [k*l, d]
    return projector(torch.cat([focus_tokens, routing], dim=0))



def llm_source(name_or_path: str | Path) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for ``--llm``.

    A ``.gguf`` file, or a folder that holds exactly one ``.gguf`` and no ``config.json``, is a GGUF LLM;
    anything else is handed to ``from_pretrained`` as it is (hub id or Hugging Face folder).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise CheckpointError(f"LLM '{name_or_path}' is a file but not a .gguf; give a GGUF file, a Hugging "
                                  "Face model folder or a hub id")
        return str(path.parent), path.name
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0]
        if len(ggufs) > 1:
            raise CheckpointError(f"LLM folder '{path}' holds {len(ggufs)} GGUF files ({', '.join(ggufs)}); "
                                  "give the one to use")
    return str(name_or_path), None


def _whole(exc: BaseException) -> str:
    """An exception's whole message on one line (loaders put the useful part on later lines)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class _StopAtText:
    """Stopping criterion: the generated text (batch 1) contains one of the format's stop strings."""

    def __init__(self, fmt: ChatFormat):
        self.fmt = fmt

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        # With inputs_embeds, input_ids holds the generated tokens only.
        done = self.fmt.stopped(self.fmt.tokenizer.decode(input_ids[0], skip_special_tokens=False))
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class _FiniteLogits:
    """Logits processor that fails generation on NaN/inf logits instead of returning an empty answer."""

    def __init__(self, lm: FocusFastLM):
        self.lm = lm

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # -inf for some tokens is a legitimate mask; NaN, +inf or a row of only -inf is not.
        if torch.isnan(scores).any() or torch.isposinf(scores).any() or torch.isneginf(scores).all(-1).any():
            raise NonFiniteLogitsError(
                f"LLM '{self.lm.name}' produced NaN/inf logits at generated token {input_ids.shape[1] + 1} "
                f"({self.lm.dtype} on {self.lm.device}): its activations overflowed or its weights are broken; "
                "run it in bfloat16 or float32 (salova's choice: bf16 on GPUs with native bf16, else fp32)"
            )
        return scores


class FocusFastLM(nn.Module):
    """Any Hugging Face causal LM, fed visual tokens through ``inputs_embeds``."""

    def __init__(self, model: nn.Module, tokenizer, name: str = ""):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.format = ChatFormat(tokenizer)

    @property
    def has_template(self) -> bool:
        return self.format.has_template

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> FocusFastLM:
        """Load a hub id, a folder, or a GGUF file (or a folder holding one) in ``dtype`` (default fp32)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, gguf_file = llm_source(name_or_path)
        kwargs, tok_kwargs = {}, {}
        if gguf_file is not None:
            missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
            if missing:
                raise CheckpointError(f"LLM '{name_or_path}' is a GGUF file, which needs {' and '.join(missing)}: "
                                      "pip install 'salova[gguf]'")
            kwargs["gguf_file"] = tok_kwargs["gguf_file"] = gguf_file
            try:  # transformers >= 5 can keep GGUF blocks packed; salova trains and saves the LLM: unpack them
                from transformers import GgufConfig

                kwargs["quantization_config"] = GgufConfig(dequantize=True)
            except ImportError:  # older transformers always dequantize
                pass
        if torch.cuda.is_available() and str(device).startswith("cuda"):
            try:
                import flash_attn  # noqa: F401

                kwargs["attn_implementation"] = "flash_attention_2"
            except ImportError:
                kwargs["attn_implementation"] = "sdpa"
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **tok_kwargs)  # a GGUF's chat template included
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32, **kwargs)
        except Exception as exc:
            raise CheckpointError(f"cannot load LLM '{name_or_path}': {_whole(exc)}") from None
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:  # the weights are plain tensors now; without this, save_pretrained refuses
            quantizer.remove_quantization_config(model)
        local = Path(name_or_path).expanduser()
        name = str(local.resolve()) if local.exists() else str(name_or_path)  # a checkpoint records it: absolute
        return cls(model.eval(), tokenizer, name).to(device)

    def save_pretrained(self, path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    # ------------------------------------------------------------------ prompt
    @staticmethod
    def content(question: str, with_video: bool) -> str:
        return f"{VIDEO_PLACEHOLDER}\n{question}" if with_video else question

    def render(self, question: str, with_video: bool) -> tuple[str, str]:
        """Return (text before the visual tokens, text after); with no video the first part is everything."""
        text = self.format.prompt(self.content(question, with_video))
        if with_video:
            before, after = text.split(VIDEO_PLACEHOLDER, 1)
            return before, after
        return text, ""

    def build_inputs(
        self, question: str, visual: torch.Tensor | None, answer: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed [prompt-before ; visual ; prompt-after (; target)].

        Args:
            visual: [v, D] projected visual tokens, or None for a text-only prompt.
            answer: when given (training), the target follows: the template's rendering of the assistant turn
                after the prompt (the answer and the turn-end marker); labels cover only the target.
        Returns:
            inputs_embeds [1, s, D] and labels [1, s] (-100 outside the target).
        """
        fmt = self.format
        before, after = self.render(question, visual is not None)
        pieces = [torch.tensor(fmt.bos_ids + fmt.ids(before), dtype=torch.long)]
        if after:
            pieces.append(torch.tensor(fmt.ids(after), dtype=torch.long))
        embed = self.model.get_input_embeddings()
        dev = self.device
        parts = [embed(pieces[0].to(dev))]
        if visual is not None:
            parts.append(visual.to(dev, parts[0].dtype))
        parts += [embed(p.to(dev)) for p in pieces[1:]]
        n_prompt = sum(p.shape[0] for p in parts)
        labels = [torch.full((n_prompt,), -100, dtype=torch.long)]
        if answer is not None:
            target = torch.tensor(fmt.ids(fmt.target(self.content(question, visual is not None), answer)),
                                  dtype=torch.long)
            parts.append(embed(target.to(dev)))
            labels.append(target)
        return torch.cat(parts)[None], torch.cat(labels)[None].to(dev)

    def forward(self, inputs_embeds: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model(inputs_embeds=inputs_embeds, labels=labels)

    @torch.inference_mode()
    def generate(self, question: str, visual: torch.Tensor | None, max_new_tokens: int = 256) -> str:
        """Greedy answer, stopped at the turn-end or next-turn marker and trimmed there."""
        from transformers import LogitsProcessorList, StoppingCriteriaList

        embeds, _ = self.build_inputs(question, visual)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        eos = self.model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        eos = list(dict.fromkeys(eos + self.format.stop_token_ids))
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if eos else 0
        out = self.model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=eos, pad_token_id=pad,
            logits_processor=LogitsProcessorList([_FiniteLogits(self)]),
            stopping_criteria=StoppingCriteriaList([_StopAtText(self.format)]),
        )
        return self.format.trim(self.tokenizer.decode(out[0], skip_special_tokens=False))
