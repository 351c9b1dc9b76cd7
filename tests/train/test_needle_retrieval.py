"""End to end, answer known: train a small connector + router for a needle task, then `salova ask` finds it.

Videos are sequences of flat-colour scenes; a question names one colour ("when is the blue scene?").
The connector and router of a tiny SALOVA checkpoint are trained here, in-process, on frames rendered
in numpy (nothing decoded); the held-out video is a real H.264 file indexed and asked through the CLI.
No score is hard-coded: the test only checks that the top-ranked moment is the needle's segment.
"""

from __future__ import annotations

import numpy as np
import torch

from salova.models import Salova, batch_similarity_loss
from salova.testing.videos import make_video
from salova.tiny import make_tiny_salova
from tests.cli_helpers import cli

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 50, 220), "yellow": (235, 220, 40),
           "white": (240, 240, 240), "black": (15, 15, 15), "purple": (140, 30, 170), "orange": (250, 140, 20)}
NAMES = sorted(COLOURS)
FRAMES_PER_SEGMENT = 2
SEGMENTS = 5


def frames_of(colour, rng, n=FRAMES_PER_SEGMENT, size=(64, 48)):
    base = np.broadcast_to(np.asarray(COLOURS[colour], np.int16), (n, size[1], size[0], 3))
    return (base + rng.integers(-10, 11, size=base.shape)).clip(0, 255).astype(np.uint8)


def train_needle_router(model: Salova, steps: int = 200, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Similarity-loss training of connector + router on random needle videos. Returns the loss curve."""
    rng = np.random.default_rng(seed)
    enc = model.encoder
    variants = 8  # noisy renderings per colour
    with torch.no_grad():  # frozen encoder: precompute a bank of per-colour segment features once
        bank = {}
        for c in NAMES:
            f = enc.encode_frames(frames_of(c, rng, n=variants * FRAMES_PER_SEGMENT))
            bank[c] = (f.patches.reshape(variants, FRAMES_PER_SEGMENT, *f.patches.shape[1:]),
                       f.cls.reshape(variants, FRAMES_PER_SEGMENT, -1))
        text = {c: enc.encode_text([f"when is the {c} scene?"]) for c in NAMES}
    params = [p for part in (model.connector, model.router) for p in part.parameters()]
    opt = torch.optim.AdamW(params, lr=lr)
    model.connector.train()
    model.router.train()
    losses, b = [], 8
    for _ in range(steps):
        looks = [list(rng.choice(NAMES, size=SEGMENTS, replace=False)) for _ in range(b)]
        needles = rng.integers(SEGMENTS, size=b)
        pick = rng.integers(variants, size=(b, SEGMENTS))
        patches = torch.stack([bank[c][0][pick[i, j]] for i in range(b) for j, c in enumerate(looks[i])])
        cls_ = torch.stack([bank[c][1][pick[i, j]] for i in range(b) for j, c in enumerate(looks[i])])
        frame_mask = torch.ones(b * SEGMENTS, FRAMES_PER_SEGMENT, dtype=torch.bool)
        routing, _ = model.connector(patches, frame_mask, cls_)  # [b*n, d]
        questions = [text[looks[i][needles[i]]] for i in range(b)]
        tokens = torch.nn.utils.rnn.pad_sequence([q.tokens[0] for q in questions], batch_first=True)
        tmask = torch.nn.utils.rnn.pad_sequence([q.mask[0] for q in questions], batch_first=True)
        query = torch.cat([q.sentence for q in questions])
        scores = model.router(routing.view(b, SEGMENTS, -1), tokens, tmask, query)  # [b, n]
        labels = torch.arange(SEGMENTS)[None] == torch.as_tensor(needles)[:, None]
        bce, margin = batch_similarity_loss(scores, labels, torch.ones_like(labels))
        loss = bce + margin
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def test_ask_finds_the_needle(capsys, tmp_path, clip_dir):
    ckpt = make_tiny_salova(tmp_path / "needle", clip_dir, None, num_latents=4)
    model = Salova.from_pretrained(ckpt, load_llm=False)
    losses = train_needle_router(model)
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    model.save_pretrained(ckpt)

    # Held-out video: scene order and the needle not seen as such in training; 3 s per scene.
    order = ["yellow", "black", "blue", "white", "green"]
    video = make_video(tmp_path / "haystack.mp4", [(3.0, COLOURS[c]) for c in order], fps=10, size=(64, 48))
    index = tmp_path / "idx"
    assert cli(capsys, "index", video.path, "--index", index, "--model", ckpt, "--quiet").code == 0
    hits = 0
    for needle in order:
        result = cli(capsys, "ask", video.path, f"when is the {needle} scene?", "--index", index, "--json").json()
        assert result["mode"] == "router"
        top = min(result["moments"], key=lambda m: m["rank"])
        i = order.index(needle)
        hits += (top["start_s"], top["end_s"]) == (3.0 * i, 3.0 * (i + 1))
    assert hits == len(order), f"top moment was the needle for {hits}/{len(order)} questions"
