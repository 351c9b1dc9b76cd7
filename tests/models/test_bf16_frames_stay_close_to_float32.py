"""bf16 frame encoding on a CPU is used only when it stays within cosine 0.999 of float32, and it never changes
the encoder's fingerprint (an index built with float32 stays usable)."""

from __future__ import annotations

import numpy as np
import torch

import salova.models.encoder as encoder_module
from salova.models.encoder import VisionTextEncoder


def _frames():
    return np.random.default_rng(1).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)


def test_bf16_frames_stay_within_the_cosine_bound_and_keep_the_fingerprint(clip_dir, monkeypatch):
    monkeypatch.setattr(encoder_module, "_cpu_bf16", lambda: True)
    enc = VisionTextEncoder.from_pretrained(clip_dir)
    before = enc.fingerprint()
    with torch.inference_mode():
        ref = enc.encode_frames(_frames()).joint
    on = enc.try_low_precision_frames(min_cosine=0.999)
    assert enc.fingerprint() == before
    with torch.inference_mode():
        low = enc.encode_frames(_frames())
    assert low.joint.dtype == torch.float32 and low.patches.dtype == torch.float32
    if on:
        assert float((ref * low.joint).sum(-1).min()) >= 0.99
    assert not enc.try_low_precision_frames(min_cosine=1.0 + 1e-6) and not enc.bf16_frames  # an unreachable bound: off


def test_no_bf16_kernels_means_float32(clip_dir, monkeypatch):
    monkeypatch.setattr(encoder_module, "_cpu_bf16", lambda: False)
    enc = VisionTextEncoder.from_pretrained(clip_dir)
    assert not enc.try_low_precision_frames() and not enc.bf16_frames
