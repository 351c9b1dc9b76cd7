"""Fixtures for the eval tests: a tiny SALOVA whose router is trained here on a colour-needle task (once per
session; slow tests only), an untrained one, colour videos whose segments are known exactly, and the tiny
encoder's zero-shot view of colours (to build needles it can separate without any training)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import tests.train.test_needle_retrieval as needle_task
from salova.models import Salova
from salova.testing.videos import make_video
from salova.tiny import make_tiny_salova

COLOURS = needle_task.COLOURS
SIZE = (64, 48)  # W, H of every test video
HAYSTACK = ["yellow", "black", "white", "green", "red", "purple", "orange"]  # 3 s each; the needle is blue


@pytest.fixture(scope="session")
def needle_ckpt(tmp_path_factory, clip_dir):
    """Connector + router trained (similarity loss, ~200 steps) to find "the {colour} scene" among 8 segments."""
    ckpt = make_tiny_salova(tmp_path_factory.mktemp("needle") / "ckpt", clip_dir, None, num_latents=4)
    model = Salova.from_pretrained(ckpt, load_llm=False)
    segments, needle_task.SEGMENTS = needle_task.SEGMENTS, 8  # as many segments as the eval videos have
    try:
        needle_task.train_needle_router(model)
    finally:
        needle_task.SEGMENTS = segments
    model.save_pretrained(ckpt)
    return ckpt


@pytest.fixture(scope="session")
def random_ckpt(tmp_path_factory, clip_dir):
    """The same architecture, untrained."""
    return make_tiny_salova(tmp_path_factory.mktemp("random") / "ckpt", clip_dir, None, num_latents=4, seed=1)


@pytest.fixture(scope="session")
def haystack_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("haystack") / "colours.mp4",
                      [(3.0, COLOURS[c]) for c in HAYSTACK], fps=10, size=SIZE)


@pytest.fixture(scope="session")
def blue_image(tmp_path_factory):
    return colour_image(tmp_path_factory.mktemp("needle_image") / "blue.png", "blue")


class ZeroShotColours:
    """What the tiny random CLIP "sees": zero-shot cosine between a text and a flat colour frame, so tests can
    pick a needle the encoder separates from the haystack (or predict the retrieval rule's choice)."""

    def __init__(self, encoder_dir):
        from salova.models.encoder import VisionTextEncoder

        self.encoder = VisionTextEncoder.from_pretrained(encoder_dir)
        self.names = sorted(COLOURS)
        frames = np.stack([np.broadcast_to(np.asarray(COLOURS[c], np.uint8), (SIZE[1], SIZE[0], 3))
                           for c in self.names])
        joint = self.encoder.encode_frames(frames).joint.float().numpy()
        self.frames = joint / np.linalg.norm(joint, axis=1, keepdims=True)  # [colours, j]

    def scores(self, text: str) -> dict[str, float]:
        t = self.encoder.encode_text([text]).joint[0].float().numpy()
        return dict(zip(self.names, (self.frames @ (t / np.linalg.norm(t))).tolist(), strict=True))

    def separable(self, text: str, margin: float = 0.04) -> tuple[str, list[str]]:
        """(the colour the text matches best, the colours at least ``margin`` below it)."""
        s = self.scores(text)
        best = max(s, key=s.get)
        return best, [c for c in self.names if s[c] < s[best] - margin]


@pytest.fixture(scope="session")
def zero_shot(clip_dir):
    return ZeroShotColours(clip_dir)


def colour_image(path, colour):
    rgb = np.broadcast_to(np.asarray(COLOURS[colour], np.uint8), (SIZE[1], SIZE[0], 3))
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path
