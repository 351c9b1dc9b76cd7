"""How an LLM's chat template frames a question, an answer and the end of a turn.

Prompts and training targets both come from the template, so the tokens the LLM is trained to produce are the
ones it is asked to produce at inference: the prompt is the user turn plus the generation prompt; the target is
the rest of the rendered assistant turn, up to and including its turn-end marker (Gemma's ``<end_of_turn>``,
Llama 3's ``<|eot_id|>``, ChatML's ``<|im_end|>``; EOS only where that is what the template writes). A tokenizer
without a chat template (base models) gets ``FALLBACK_TEMPLATE``: a ``USER:`` / ``ASSISTANT:`` transcript whose
assistant turns end with EOS.

Generation stops at the turn-end marker and at the markers that open a turn (a base model that ignores EOS goes
on writing ``\\nUSER: ...`` or ``\\nASSISTANT: ...``); the answer is trimmed there.
"""

from __future__ import annotations

import logging

from salova.errors import CheckpointError

logger = logging.getLogger(__name__)

# For tokenizers without a chat template. The generation prompt ends with "ASSISTANT:" and the answer follows
# after a space, so the first target token is the one a model writes after "ASSISTANT:" (e.g. "▁Paris").
FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}USER: {{ m['content'] }}\n"
    "{% else %}ASSISTANT: {{ m['content'] }}{{ eos_token or '' }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# Probe texts rendered through the template once to find its turn-end and next-turn markers.
_QUESTION, _ANSWER, _NEXT = "salova probe question", "salova probe answer", "salova probe next"


def _user(content: str) -> dict:
    return {"role": "user", "content": content}


def _assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


class ChatFormat:
    """One tokenizer's prompt layout, training targets and stop markers.

    Attributes:
        has_template: the tokenizer has its own chat template (else ``FALLBACK_TEMPLATE`` is used).
        bos_ids: token ids put before the first text piece (a template writes its own BOS into the text).
        turn_end: text that closes an assistant turn, e.g. "<end_of_turn>" ("" if the template writes none).
        next_turn: text that opens the next user turn after it, e.g. "\\nUSER:" or "\\n<start_of_turn>user".
        answer_turn: text between a question and its answer, e.g. "\\nASSISTANT:".
        stop_strings: where a generated answer ends.
        stop_token_ids: the stop strings that are one token (generation stops on them like on EOS).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self._template = None if self.has_template else FALLBACK_TEMPLATE
        self.bos_ids = [] if self.has_template else _leading_bos(tokenizer)
        try:
            closed = self.render([_user(_QUESTION), _assistant(_ANSWER)])
            two_turns = self.render([_user(_QUESTION), _assistant(_ANSWER), _user(_NEXT)])
        except Exception as exc:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise CheckpointError(f"the LLM's chat template cannot render a user/assistant exchange: {msg}") from None
        if _ANSWER not in closed or _NEXT not in two_turns:
            raise CheckpointError("the LLM's chat template drops the message contents")
        self.turn_end = closed.rsplit(_ANSWER, 1)[1].strip()
        # e.g. "<end_of_turn>\n<start_of_turn>model\n" and "<end_of_turn>\n<start_of_turn>user\n", turn end dropped
        self.answer_turn = self._opening(closed.split(_QUESTION, 1)[1].split(_ANSWER, 1)[0])
        self.next_turn = self._opening(two_turns.split(_ANSWER, 1)[1].split(_NEXT, 1)[0])
        self.stop_strings = [s for s in (self.turn_end, self.next_turn, self.answer_turn) if s.strip()]
        self.stop_token_ids = []
        for s in self.stop_strings:
            ids = tokenizer(s, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                self.stop_token_ids.append(ids[0])
        self._specials = _special_texts(tokenizer)

    def _opening(self, between: str) -> str:
        """The marker that opens a turn: the text between two contents, less the turn end before it."""
        if self.turn_end and self.turn_end in between:
            between = between.split(self.turn_end, 1)[1]
        return between.rstrip()

    def render(self, messages: list[dict], add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self._template, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def prompt(self, content: str) -> str:
        """The text of a user turn with ``content``, ending where the assistant's answer starts."""
        return self.render([_user(content)], add_generation_prompt=True)

    def target(self, content: str, answer: str) -> str:
        """The text the model should write after ``prompt(content)``: the answer and the turn-end marker."""
        prompt = self.prompt(content)
        full = self.render([_user(content), _assistant(answer)])
        if full.startswith(prompt):
            rest = full[len(prompt) :]
        else:  # a template whose generation prompt is not the start of its assistant turn
            logger.debug("chat template: the rendered assistant turn does not extend the prompt; answer + turn end")
            rest = answer + self.turn_end
        if self.turn_end and self.turn_end in rest:
            return rest[: rest.rindex(self.turn_end) + len(self.turn_end)]
        # The template closes a turn with nothing but whitespace: EOS teaches the model to stop.
        return rest.rstrip() + (self.tokenizer.eos_token or "")

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def trim(self, generated: str) -> str:
        """Generated text (special tokens included) -> the answer: cut at the first stop string, no specials."""
        cut = min((i for i in (generated.find(s) for s in self.stop_strings) if i >= 0), default=len(generated))
        text = generated[:cut]
        for s in self._specials:
            if s in text:
                text = text.replace(s, "")
        return text.strip()

    def stopped(self, generated: str) -> bool:
        return any(s in generated for s in self.stop_strings)


def _leading_bos(tokenizer) -> list[int]:
    """[BOS] if the tokenizer puts one before a bare text (Llama, Gemma), else [] (GPT-2, Qwen)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a")["input_ids"][:1] == [bos] else []


def _special_texts(tokenizer) -> list[str]:
    specials = set(tokenizer.all_special_tokens)
    specials |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    return sorted((s for s in specials if s), key=len, reverse=True)
