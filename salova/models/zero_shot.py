"""Zero-shot segment scoring with the encoder's joint image-text space (no trained SALOVA weights).

Segment score = cos(mean of its frames' joint image embeddings, the question's joint text embedding).
Notation: n segments, f frames, j joint width.
"""

from __future__ import annotations

import numpy as np


def segment_embedding(frame_joint: np.ndarray) -> np.ndarray:
    """Frame embeddings [f, j] -> L2-normalised mean [j] (float32)."""
    mean = np.asarray(frame_joint, dtype=np.float32).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def zero_shot_scores(segment_joint: np.ndarray, text_joint: np.ndarray) -> np.ndarray:
    """Cosine scores [n] of L2-normalised segment embeddings [n, j] with a text embedding [j]."""
    t = np.asarray(text_joint, dtype=np.float32)
    t = t / max(float(np.linalg.norm(t)), 1e-12)
    return np.asarray(segment_joint, dtype=np.float32) @ t
