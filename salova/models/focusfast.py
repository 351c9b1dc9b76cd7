"""FocusFast: feed the LLM the top-K segments in detail and every segment in brief (paper Sec. 4.1.3).

Focus pathway: the projected ``num_latents`` latents of each of the top-K segments (router score),
put back in time order. Fast pathway: the projected routing token of every segment. The visual tokens
(focus, then fast) replace a placeholder in the user turn of the LLM's chat template, before the question.

Notation: n segments, k focus segments, l latents per segment, d connector width, D LLM width, s tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from salova.errors import CheckpointError

VIDEO_PLACEHOLDER = "<video>"
# Used when the LLM's tokenizer has no chat template (base models).
FALLBACK_TEMPLATE = "USER: {content}\nASSISTANT:"


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


class FocusFastLM(nn.Module):
    """Any Hugging Face causal LM, fed visual tokens through ``inputs_embeds``."""

    def __init__(self, model: nn.Module, tokenizer, name: str = ""):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.has_template = bool(getattr(tokenizer, "chat_template", None))

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> FocusFastLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {}
        if torch.cuda.is_available() and str(device).startswith("cuda"):
            try:
                import flash_attn  # noqa: F401

                kwargs["attn_implementation"] = "flash_attention_2"
            except ImportError:
                kwargs["attn_implementation"] = "sdpa"
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or torch.float32, **kwargs)
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"cannot load LLM '{name_or_path}': {msg}") from None
        return cls(model.eval(), tokenizer, str(name_or_path)).to(device)

    def save_pretrained(self, path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # ------------------------------------------------------------------ prompt
    def render(self, question: str, with_video: bool, answer: str | None = None) -> tuple[str, str]:
        """Return (text before the visual tokens, text after); with no video the first part is everything."""
        content = f"{VIDEO_PLACEHOLDER}\n{question}" if with_video else question
        if self.has_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = FALLBACK_TEMPLATE.format(content=content)
        if with_video:
            before, after = text.split(VIDEO_PLACEHOLDER, 1)
            return before, after
        return text, ""

    def _ids(self, text: str, first: bool) -> torch.Tensor:
        # A chat template writes its own BOS; a bare prompt gets the tokenizer's special tokens.
        add = first and not self.has_template
        return torch.tensor(self.tokenizer(text, add_special_tokens=add)["input_ids"], dtype=torch.long)

    def build_inputs(
        self, question: str, visual: torch.Tensor | None, answer: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed [prompt-before ; visual ; prompt-after (; answer)].

        Args:
            visual: [v, D] projected visual tokens, or None for a text-only prompt.
            answer: when given (training), appended with EOS and returned labels cover only its tokens.
        Returns:
            inputs_embeds [1, s, D] and labels [1, s] (-100 outside the answer).
        """
        before, after = self.render(question, visual is not None)
        pieces = [self._ids(before, first=True)]
        if after:
            pieces.append(self._ids(after, first=False))
        answer_ids = None
        if answer is not None:
            eos = self.tokenizer.eos_token or ""
            answer_ids = self._ids(answer + eos, first=False)
        embed = self.model.get_input_embeddings()
        dev = self.device
        parts = [embed(pieces[0].to(dev))]
        if visual is not None:
            parts.append(visual.to(dev, parts[0].dtype))
        parts += [embed(p.to(dev)) for p in pieces[1:]]
        n_prompt = sum(p.shape[0] for p in parts)
        labels = [torch.full((n_prompt,), -100, dtype=torch.long)]
        if answer_ids is not None:
            parts.append(embed(answer_ids.to(dev)))
            labels.append(answer_ids)
        return torch.cat(parts)[None], torch.cat(labels)[None].to(dev)

    def forward(self, inputs_embeds: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model(inputs_embeds=inputs_embeds, labels=labels)

    @torch.inference_mode()
    def generate(self, question: str, visual: torch.Tensor | None, max_new_tokens: int = 256) -> str:
        embeds, _ = self.build_inputs(question, visual)
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        out = self.model.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad,
        )
        return self.tokenizer.decode(out[0], skip_special_tokens=True).strip()
