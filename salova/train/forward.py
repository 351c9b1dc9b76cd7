"""The training forward pass: frames -> encoder -> ST-Connector -> SR-Router (+ similarity loss) -> FocusFast LM.

Per sample: encode the 1-FPS frames (no gradient while the vision tower is frozen), compress each segment
with the connector (token drop active in train mode), score the segments against the router queries with the
router, and feed FocusFast tokens (focus segments' latents, every segment's routing token) plus the prompt
to the LLM, whose loss covers the answer tokens only. Total loss = LM loss + w * similarity loss.

Router queries: a SceneWalk sample's descriptions (up to ``max_router_queries`` drawn at random, each with its
own label row over the segments; the LM trains on the first drawn one's exchange, as the reference code does),
or a one-question sample's question (``router_query="answer"``: its answer). The similarity loss of a sample
covers its query x segment score matrix at once (BCE over every cell; margin pairs drawn from the whole
matrix, as the reference's loss does), and only rows with known labels, or with other samples' segments as
negatives (``in_batch_negatives``), take part.

Focus segments in training (``focus``): "labels" takes the LM query's positives first (at most
``max_positives``, ranked by router score) and fills up to K with the router's best other segments, like the
reference code, which feeds the LLM the labelled segments; "router" uses the router's top-K only (pure
end-to-end, as the paper describes).

Prompt (``prompt``): "chat" puts the visual tokens and the question in the LLM's chat template; "plain" is the
reference's stage 1 / 1.5 format: [BOS] visual tokens, then the answer and a newline, no question.

Notation: f frames, p tokens per frame, d encoder width, n segments, l latents, q router queries, s LLM tokens.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

from salova.models.focusfast import visual_tokens
from salova.models.loss import similarity_loss
from salova.models.salova import Salova
from salova.train.data import Example

ENCODE_CHUNK = 32  # frames per encoder call
CONNECTOR_CHUNK = 16  # segments per connector call (bounds the padded [b, f, p, d] tensor)
MAX_ROUTER_QUERIES = 16  # SceneWalk descriptions per sample and step (reference: max_clip_num 16)
PROMPTS = ("chat", "plain")

logger = logging.getLogger(__name__)


class SalovaForTraining(nn.Module):
    """Wraps a ``Salova`` for DeepSpeed: ``forward(list[Example]) -> {"loss", "lm_loss", "sim_loss", ...}``."""

    def __init__(
        self, model: Salova, *, train_vision: bool = False, train_text: bool = False, train_llm: bool = False,
        top_k: int = 5, focus: str = "labels", max_positives: int = 5, router_query: str = "question",
        in_batch_negatives: bool = False, sim_loss_weight: float = 1.0, sim_margin: float = 0.2,
        margin_term: bool = True, prompt: str = "chat", max_length: int = 8192, feature_cache: bool = False,
        max_router_queries: int = MAX_ROUTER_QUERIES,
    ):
        super().__init__()
        if prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
        self.salova = model
        self.train_vision, self.train_text, self.train_llm = train_vision, train_text, train_llm
        self.top_k, self.focus, self.max_positives, self.router_query = top_k, focus, max_positives, router_query
        self.in_batch_negatives = in_batch_negatives
        self.sim_loss_weight, self.sim_margin, self.margin_term = sim_loss_weight, sim_margin, margin_term
        self.prompt, self.max_length, self.max_router_queries = prompt, max_length, max_router_queries
        # id -> (patches [f, p, d], cls [f, d], segment_of_frame [f], n); only with a frozen vision tower.
        self.cache: dict[str, tuple] | None = {} if feature_cache and not train_vision else None
        self._warned_unlabelled = False

    def train(self, mode: bool = True):
        """Frozen towers stay in eval mode (no dropout) while the trained parts train."""
        super().train(mode)
        enc, llm = self.salova.encoder, self.salova.llm
        if enc is not None:
            enc.eval()
            if mode and self.train_vision:
                enc.model.vision_model.train()
            if mode and self.train_text:
                enc.model.text_model.train()
        if llm is not None and not (mode and self.train_llm):
            llm.eval()
        return self

    # ------------------------------------------------------------------ parts
    def encode(self, ex: Example) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Frame features of one sample: patches [f, p, d], cls [f, d], segment_of_frame [f], n segments."""
        dev = self.salova.device
        if self.cache is not None and ex.id in self.cache:
            patches, cls, seg, n = self.cache[ex.id]
            return patches.to(dev), cls.to(dev), seg.to(dev), n
        enc = self.salova.encoder
        with torch.set_grad_enabled(self.train_vision and torch.is_grad_enabled()):
            outs = [enc.encode_frames(chunk) for chunk in ex.frames.split(ENCODE_CHUNK)]
        patches = torch.cat([o.patches for o in outs])  # [f, p, d]
        cls = torch.cat([o.cls for o in outs])  # [f, d]
        seg = ex.segment_of_frame.to(dev)
        if self.cache is not None:
            self.cache[ex.id] = (patches.detach().cpu(), cls.detach().cpu(), seg.cpu(), ex.num_segments)
        return patches, cls, seg, ex.num_segments

    def compress(self, patches: torch.Tensor, cls: torch.Tensor, seg: torch.Tensor, n: int):
        """Connector over every segment: routing [n, d], latents [n, l, d].

        ``seg`` [f] is non-decreasing, so a frame's place in its segment is its position minus the segment start.
        """
        counts = torch.bincount(seg, minlength=n)  # [n]
        starts = torch.cumsum(counts, 0) - counts  # [n]
        pos = torch.arange(seg.shape[0], device=seg.device) - starts[seg]  # [f]
        routing, latents = [], []
        for lo in range(0, n, CONNECTOR_CHUNK):
            hi = min(n, lo + CONNECTOR_CHUNK)
            sel = (seg >= lo) & (seg < hi)
            fmax = int(counts[lo:hi].max())
            b, p, d = hi - lo, patches.shape[1], patches.shape[2]
            padded = patches.new_zeros(b, fmax, p, d)  # [b, fmax, p, d]
            cls_pad = cls.new_zeros(b, fmax, d)  # [b, fmax, d]
            mask = torch.zeros(b, fmax, dtype=torch.bool, device=seg.device)  # [b, fmax]
            rows, cols = seg[sel] - lo, pos[sel]
            padded[rows, cols] = patches[sel]
            cls_pad[rows, cols] = cls[sel]
            mask[rows, cols] = True
            r, lat = self.salova.compress(padded, cls_pad, mask)
            routing.append(r)
            latents.append(lat)
        return torch.cat(routing), torch.cat(latents)  # [n, d], [n, l, d]

    def text_features(self, texts: list[str]):
        with torch.set_grad_enabled(self.train_text and torch.is_grad_enabled()):
            return self.salova.encoder.encode_text(texts)

    def plan(self, ex: Example) -> tuple[list[str], list, tuple[str, str]]:
        """This step's router texts, their label rows, and the (question, answer) the LM trains on."""
        if ex.queries:
            drawn = torch.randperm(len(ex.queries))[: self.max_router_queries].tolist()
            return [ex.queries[j] for j in drawn], [ex.labels[j] for j in drawn], ex.pairs[drawn[0]]
        question, answer = ex.pairs[0]
        return [answer if self.router_query == "answer" else question], [ex.labels[0]], (question, answer)

    def choose_focus(self, scores: torch.Tensor, labels: list | None) -> torch.Tensor:
        """Focus segment indices [<=k], time order. scores [n] are the LM query's router scores."""
        k = min(self.top_k, scores.shape[0])
        order = scores.detach().argsort(descending=True).tolist()
        if self.focus == "labels" and labels is not None:
            positives = [i for i in order if labels[i]][: self.max_positives]
            order = positives + [i for i in order if i not in positives]
        return torch.tensor(sorted(order[:k]), device=scores.device)

    def lm_loss(self, question: str, answer: str, latents, routing, focus) -> torch.Tensor | None:
        llm = self.salova.llm
        visual = visual_tokens(self.salova.projector, latents, routing, focus)  # [k*l + n, D]
        if self.prompt == "plain":
            embeds, labels = self.plain_inputs(visual, answer)
        else:
            embeds, labels = llm.build_inputs(question, visual, answer)  # [1, s, D], [1, s]
        embeds, labels = embeds[:, : self.max_length], labels[:, : self.max_length]
        if not (labels[:, 1:] != -100).any():  # the answer was cut off entirely
            return None
        return llm(embeds, labels=labels).loss

    def plain_inputs(self, visual: torch.Tensor, answer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's ``plain`` template: [BOS] visual answer "\\n"; labels on the answer and newline only.

        visual [v, D] -> inputs_embeds [1, s, D], labels [1, s].
        """
        llm = self.salova.llm
        tok = llm.tokenizer
        probe = tok("a")["input_ids"]
        bos = probe[:1] if tok.bos_token_id is not None and probe[:1] == [tok.bos_token_id] else []
        target = tok(answer + "\n", add_special_tokens=False)["input_ids"]
        embed = llm.model.get_input_embeddings()
        dev = llm.device
        ids = lambda x: torch.tensor(x, dtype=torch.long, device=dev)  # noqa: E731
        parts = [embed(ids(bos)), visual.to(dev, embed.weight.dtype), embed(ids(target))]
        labels = [-100] * (len(bos) + visual.shape[0]) + target
        return torch.cat(parts)[None], ids(labels)[None]

    # ------------------------------------------------------------------ forward
    def forward(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        """batch: decoded samples of one micro-batch -> losses (``loss`` is the one to back-propagate)."""
        feats = [self.encode(ex) for ex in batch]
        compressed = [self.compress(*f) for f in feats]  # [(routing [n, d], latents [n, l, d])]
        sizes = [r.shape[0] for r, _ in compressed]
        others = self.in_batch_negatives and len(batch) > 1
        all_routing = torch.cat([r for r, _ in compressed]) if others else None
        dev = self.salova.device
        sims, lms, queries = [], [], 0
        for i, (ex, (routing, latents)) in enumerate(zip(batch, compressed, strict=True)):
            texts, rows, (question, answer) = self.plan(ex)
            group, offset = (all_routing, sum(sizes[:i])) if others else (routing, 0)
            # Label matrix [q, N]: each row's own segments, others' segments (if any) negatives.
            target = torch.zeros(len(texts), group.shape[0], dtype=torch.bool, device=dev)
            for r, row in enumerate(rows):
                target[r, offset : offset + sizes[i]] = torch.tensor(row if row is not None else [True] * sizes[i])
            # Unknown labels (no scores in the data) teach the router nothing without other samples' negatives.
            trains = torch.tensor([row is not None or others for row in rows], device=dev)  # [q]
            text = self.text_features(texts)
            scores = self.salova.score(group, text).float().reshape(len(texts), -1)  # [q, N]: every text x segment
            if bool(trains.any()):
                bce, margin = similarity_loss(scores[trains].flatten(), target[trains].flatten(), self.sim_margin)
                sims.append(bce + margin if self.margin_term else bce)
                queries += int(trains.sum())
            elif not self._warned_unlabelled:
                self._warned_unlabelled = True
                logger.warning("sample %s has no router labels (no scores in the data) and no in-batch negatives: "
                               "it trains the LM only; such samples give the router no similarity loss", ex.id)
            if self.salova.llm is not None:
                focus = self.choose_focus(scores[0, offset : offset + sizes[i]], rows[0])
                loss = self.lm_loss(question, answer, latents, routing, focus)
                if loss is not None:
                    lms.append(loss.float())
        zero = self._zero()
        lm = torch.stack(lms).mean() if lms else None
        sim = torch.stack(sims).mean() if sims else None
        total = zero
        if lm is not None:
            total = total + lm
        if sim is not None:
            total = total + self.sim_loss_weight * sim
        nan = torch.tensor(math.nan)
        return {
            "loss": total,
            "lm_loss": lm.detach() if lm is not None else nan,
            "sim_loss": sim.detach() if sim is not None else nan,
            "router_queries": torch.tensor(float(queries)),
        }

    def _zero(self) -> torch.Tensor:
        """0 * (sum of trained parameters): every trained parameter gets a (zero) gradient on every rank,
        so ZeRO-2's gradient reduction sees the same tensors everywhere, even for a micro-batch whose
        samples were all skipped or that leaves some part unused."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return torch.zeros(())
        return torch.stack([p.view(-1)[0].float() for p in params]).sum() * 0.0
