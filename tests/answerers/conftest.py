"""Fixtures for the answerer tests: tiny VLMs saved like hub checkpoints, and one indexed video whose every
frame carries its own frame number (a barcode), so a test can read which frame a model was shown."""

from __future__ import annotations

import numpy as np
import pytest

from salova.testing.videos import make_video
from salova.testing.vlms import make_tiny_idefics3, make_tiny_qwen2_vl

FPS = 10
SIZE = (160, 96)  # (W, H)
# Flat colours far from the report page's greys, one per scene (2 s each).
COLOURS = [(230, 30, 30), (30, 200, 40), (40, 40, 220), (240, 200, 0), (200, 0, 200), (0, 200, 200)]
BITS, CELL = 10, 8  # barcode: 10 bits, 8x8-px cells, top-left corner


def barcode_look(colour: tuple[int, int, int], first_frame: int):
    """A flat colour with the video-wide frame number written in the top-left corner (white = 1)."""

    def render(i: int, t: float) -> np.ndarray:
        img = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
        img[:] = colour
        n = first_frame + i
        for b in range(BITS):
            img[:CELL, b * CELL:(b + 1) * CELL] = 255 if (n >> b) & 1 else 0
        return img

    return render


def read_barcode(rgb: np.ndarray) -> int:
    """The frame number written by ``barcode_look`` (from the centre pixel of each cell)."""
    gray = np.asarray(rgb, np.float32).mean(axis=2)
    return sum(1 << b for b in range(BITS) if gray[CELL // 2, b * CELL + CELL // 2] > 128)


@pytest.fixture(scope="session")
def barcode_video(tmp_path_factory):
    """Six 2-s scenes at 10 fps; frame ``n`` shows ``n`` in its barcode."""
    segs = [(2.0, barcode_look(c, j * 2 * FPS)) for j, c in enumerate(COLOURS)]
    return make_video(tmp_path_factory.mktemp("videos") / "barcode.mp4", segs, fps=FPS, size=SIZE)


@pytest.fixture(scope="session")
def indexed(tmp_path_factory, barcode_video, clip_dir):
    """The barcode video indexed zero-shot with the tiny CLIP: (video, index dir)."""
    from salova.pipeline.run import IndexOptions, run_index

    index = tmp_path_factory.mktemp("index") / "idx"
    summary = run_index([barcode_video.path], IndexOptions(index_dir=index, encoder=str(clip_dir), device="cpu",
                                                           progress=False, shard_from_env=False))
    assert summary.indexed == 1 and summary.segments == len(COLOURS), summary
    return barcode_video, index


@pytest.fixture(scope="session")
def qwen2_vl_dir(tiny_dir):
    return make_tiny_qwen2_vl(tiny_dir / "qwen2_vl")


@pytest.fixture(scope="session")
def idefics3_dir(tiny_dir):
    return make_tiny_idefics3(tiny_dir / "idefics3")


@pytest.fixture()
def server():
    """The OpenAI-compatible stub (``stub_server.py``) on loopback."""
    from tests.answerers.stub_server import start_server

    httpd = start_server()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
