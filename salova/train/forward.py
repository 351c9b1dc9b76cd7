"""The training forward pass: frames -> encoder -> ST-Connector -> SR-Router (+ similarity loss) -> FocusFast LM.

Per sample: encode the 1-FPS frames (no gradient while the vision tower is frozen), compress each segment
with the connector (token drop active in train mode), score the segments against the router text with the
router, and feed FocusFast tokens (focus segments' latents, every segment's routing token) plus the question
to the LLM, whose loss covers the answer tokens only. Total loss = LM loss + w * similarity loss.

Focus segments in training (``focus``): "labels" takes the ground-truth positives first (ranked by router
score) and fills up to K with the router's best other segments, like the reference code, which feeds the LLM
the labelled segments; "router" uses the router's top-K only (pure end-to-end, as the paper describes).

Notation: f frames, p tokens per frame, d encoder width, n segments, l latents, s LLM tokens.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from salova.models.focusfast import visual_tokens
from salova.models.loss import similarity_loss
from salova.models.salova import Salova
from salova.train.data import Example

ENCODE_CHUNK = 32  # frames per encoder call
CONNECTOR_CHUNK = 16  # segments per connector call (bounds the padded [b, f, p, d] tensor)


class SalovaForTraining(nn.Module):
    """Wraps a ``Salova`` for DeepSpeed: ``forward(list[Example]) -> {"loss", "lm_loss", "sim_loss", ...}``."""

    def __init__(
        self, model: Salova, *, train_vision: bool = False, train_text: bool = False, train_llm: bool = False,
        top_k: int = 5, focus: str = "labels", router_query: str = "question", in_batch_negatives: bool = False,
        sim_loss_weight: float = 1.0, sim_margin: float = 0.2, max_length: int = 8192, feature_cache: bool = False,
    ):
        super().__init__()
        self.salova = model
        self.train_vision, self.train_text, self.train_llm = train_vision, train_text, train_llm
        self.top_k, self.focus, self.router_query = top_k, focus, router_query
        self.in_batch_negatives = in_batch_negatives
        self.sim_loss_weight, self.sim_margin, self.max_length = sim_loss_weight, sim_margin, max_length
        # id -> (patches [f, p, d], cls [f, d], segment_of_frame [f], labels, n); only with a frozen vision tower.
        self.cache: dict[str, tuple] | None = {} if feature_cache and not train_vision else None

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
    def encode(self, ex: Example) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list | None, int]:
        """Frame features of one sample: patches [f, p, d], cls [f, d], segment_of_frame [f], labels, n."""
        dev = self.salova.router.logit_scale.device
        if self.cache is not None and ex.id in self.cache:
            patches, cls, seg, labels, n = self.cache[ex.id]
            return patches.to(dev), cls.to(dev), seg.to(dev), labels, n
        enc = self.salova.encoder
        with torch.set_grad_enabled(self.train_vision and torch.is_grad_enabled()):
            outs = [enc.encode_frames(chunk) for chunk in ex.frames.split(ENCODE_CHUNK)]
        patches = torch.cat([o.patches for o in outs])  # [f, p, d]
        cls = torch.cat([o.cls for o in outs])  # [f, d]
        seg = ex.segment_of_frame.to(dev)
        if self.cache is not None:
            self.cache[ex.id] = (patches.detach().cpu(), cls.detach().cpu(), seg.cpu(), ex.labels, ex.num_segments)
        return patches, cls, seg, ex.labels, ex.num_segments

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
            r, lat = self.salova.connector(padded, mask, cls_pad)
            routing.append(r)
            latents.append(lat)
        return torch.cat(routing), torch.cat(latents)  # [n, d], [n, l, d]

    def text_features(self, text: str):
        with torch.set_grad_enabled(self.train_text and torch.is_grad_enabled()):
            return self.salova.encoder.encode_text([text])

    def choose_focus(self, scores: torch.Tensor, labels: list | None) -> torch.Tensor:
        """Focus segment indices [<=k], time order. scores [n] are this sample's router scores."""
        k = min(self.top_k, scores.shape[0])
        order = scores.detach().argsort(descending=True).tolist()
        if self.focus == "labels" and labels is not None:
            order = [i for i in order if labels[i]] + [i for i in order if not labels[i]]
        return torch.tensor(sorted(order[:k]), device=scores.device)

    def lm_loss(self, question: str, answer: str, latents, routing, focus) -> torch.Tensor | None:
        llm = self.salova.llm
        visual = visual_tokens(self.salova.projector, latents, routing, focus)  # [k*l + n, D]
        embeds, labels = llm.build_inputs(question, visual, answer)  # [1, s, D], [1, s]
        embeds, labels = embeds[:, : self.max_length], labels[:, : self.max_length]
        if not (labels[:, 1:] != -100).any():  # the answer was cut off entirely
            return None
        return llm(embeds, labels=labels).loss

    # ------------------------------------------------------------------ forward
    def forward(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        """batch: decoded samples of one micro-batch -> losses (``loss`` is the one to back-propagate)."""
        feats = [self.encode(ex) for ex in batch]
        compressed = [self.compress(p, c, s, n) for p, c, s, _, n in feats]  # [(routing [n, d], latents)]
        sizes = [r.shape[0] for r, _ in compressed]
        all_routing = torch.cat([r for r, _ in compressed]) if self.in_batch_negatives else None
        sims, lms = [], []
        for i, (ex, (routing, latents)) in enumerate(zip(batch, compressed, strict=True)):
            labels = feats[i][3]
            own = torch.tensor(labels if labels is not None else [True] * sizes[i], device=routing.device)
            text = self.text_features(ex.answer if self.router_query == "answer" else ex.question)
            group, group_labels, offset = routing, own, 0
            if all_routing is not None and len(batch) > 1:
                offset = sum(sizes[:i])
                group = all_routing
                group_labels = torch.zeros(all_routing.shape[0], dtype=torch.bool, device=routing.device)
                group_labels[offset : offset + sizes[i]] = own
            dev = self.salova.router.logit_scale.device
            query = text.sentence.to(dev) if text.sentence is not None else None  # as Salova.score does
            scores = self.salova.router(group[None], text.tokens.to(dev), text.mask.to(dev), text_query=query)
            scores = scores[0].float()  # [N]
            # Unknown labels (no scores in the data) teach the router nothing without other samples' negatives.
            if labels is not None or not bool(group_labels.all()):
                bce, margin = similarity_loss(scores, group_labels, self.sim_margin)
                sims.append(bce + margin)
            if self.salova.llm is not None:
                focus = self.choose_focus(scores[offset : offset + sizes[i]], labels)
                loss = self.lm_loss(ex.question, ex.answer, latents, routing, focus)
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
        }

    def _zero(self) -> torch.Tensor:
        """0 * (sum of trained parameters): every trained parameter gets a (zero) gradient on every rank,
        so ZeRO-2's gradient reduction sees the same tensors everywhere, even for a micro-batch whose
        samples were all skipped or that leaves some part unused."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return torch.zeros(())
        return torch.stack([p.view(-1)[0].float() for p in params]).sum() * 0.0
