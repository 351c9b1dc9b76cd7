"""Small synthetic libraries and an in-process CLI call for the retrieval tests."""

from __future__ import annotations

import numpy as np

from salova.testing.videos import make_video

FPS = 15
SIZE = (96, 64)
LOOKS = [(230, 30, 30), (30, 200, 40), (40, 40, 220), "noise", "checker", (240, 240, 40), "bars"]


def make_library(root, n: int, scenes: int, seconds: float):
    """n videos of `scenes` scenes each; neighbouring scenes always look different (exact cuts)."""
    return [
        make_video(root / f"video_{v}.mp4", [(seconds, LOOKS[(v + s) % len(LOOKS)]) for s in range(scenes)],
                   fps=FPS, size=SIZE)
        for v in range(n)
    ]


def run_cli(*args) -> int:
    """`salova ARGS` in this process (for module-scoped fixtures, which cannot use capsys)."""
    from salova_cli.main import main

    return main([str(a) for a in args])


# Colour pairs for fades: each scene drifts from one colour to the next, so its 1-FPS frames differ.
FADES = [((230, 30, 30), (30, 30, 230)), ((30, 200, 40), (240, 240, 40)), ((20, 20, 20), (240, 240, 240)),
         ((240, 120, 0), (0, 160, 160)), ((160, 0, 200), (200, 200, 200))]


def fade(a, b, seconds: float):
    """A look that blends colour ``a`` into ``b`` over ``seconds``: a scene without a cut whose frames differ."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)

    def look(i: int, t: float) -> np.ndarray:
        w = min(t / seconds, 1.0)
        rgb = np.round(a * (1 - w) + b * w).astype(np.uint8)
        return np.broadcast_to(rgb, (SIZE[1], SIZE[0], 3)).copy()

    return look


def make_fading_library(root, n: int, scenes: int, seconds: float):
    """n videos of `scenes` fading scenes each, hard cuts between them: every segment holds several distinct
    1-FPS frames, so the best-matching frame of a segment is not simply its first."""
    return [
        make_video(root / f"fades_{v}.mp4",
                   [(seconds, fade(*FADES[(v + s) % len(FADES)], seconds)) for s in range(scenes)], fps=FPS, size=SIZE)
        for v in range(n)
    ]


def still(seed: int):
    """A look: a static image of coloured 8x8 blocks, different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
    return lambda i, t: image


def make_distinct_library(root, n: int, scenes: int, seconds: float):
    """n videos of `scenes` scenes, no two scenes in the library alike (no tied scores between videos)."""
    return [
        make_video(root / f"video_{v}.mp4", [(seconds, still(1000 + 100 * v + s)) for s in range(scenes)],
                   fps=FPS, size=SIZE)
        for v in range(n)
    ]
