"""Plain records exchanged with the index store, the model fingerprint, and the default index location."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import platformdirs


def default_index_dir() -> Path:
    """`$SALOVA_INDEX` if set, else `<user data dir>/salova/index` (e.g. ~/.local/share/salova/index)."""
    env = os.environ.get("SALOVA_INDEX")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_data_path("salova") / "index"


def model_location(name_or_path: str | os.PathLike) -> str:
    """How an index records a model: a local folder as an absolute path (valid from any directory), a hub id
    as given."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.exists() else str(name_or_path)


@dataclass(frozen=True)
class ModelFingerprint:
    """What produced an index's vectors. Two fingerprints are equal exactly when their digests are."""

    encoder: str = field(compare=False)  # HF hub id or local dir of the CLIP/SigLIP encoder
    checkpoint: str | None = field(compare=False)  # SALOVA checkpoint dir, None for zero-shot
    digest: str  # hash over everything that changes the stored vectors
    # digests this same model had in older salova versions (an index recording one of them is this model's)
    aliases: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_parts(cls, encoder: str, checkpoint: str | None = None, **details: object) -> ModelFingerprint:
        """Fingerprint whose digest covers `encoder`, `checkpoint` and any extra JSON-able `details`."""
        payload = json.dumps({"encoder": encoder, "checkpoint": checkpoint, **details}, sort_keys=True, default=str)
        return cls(encoder, checkpoint, hashlib.sha256(payload.encode()).hexdigest()[:32])

    def matches(self, stored: ModelFingerprint) -> bool:
        """Whether an index recording ``stored`` was built by this model."""
        return stored.digest == self.digest or stored.digest in self.aliases

    def describe(self) -> str:
        if self.checkpoint:
            return f"encoder {self.encoder} + checkpoint {self.checkpoint}"
        return f"encoder {self.encoder} (zero-shot, no checkpoint)"

    def to_json(self) -> str:
        return json.dumps(
            {"encoder": self.encoder, "checkpoint": self.checkpoint, "digest": self.digest}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> ModelFingerprint:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("encoder"), str):
            raise ValueError(f"not a model fingerprint: {text[:80]!r}")
        checkpoint = data.get("checkpoint")
        digest = data.get("digest")
        if (checkpoint is not None and not isinstance(checkpoint, str)) or not isinstance(digest, str):
            raise ValueError(f"not a model fingerprint: {text[:80]!r}")
        return cls(data["encoder"], checkpoint, digest)


@dataclass
class VideoRecord:
    """One row of the `videos` table."""

    id: int  # never reused; replacing a video gives it a new id
    path: str  # absolute path, unique in the index
    size: int  # bytes
    mtime_ns: int
    content_hash: str
    duration_s: float | None
    fps: float | None
    num_frames: int | None  # frames in the file at its native fps
    status: str  # 'indexed' or 'failed'
    error: str | None  # why indexing failed (status 'failed')
    indexed_at: datetime | None = None  # UTC, when this row was committed
    shard: str | None = None  # e.g. '3/8' when indexed by a shard
    num_segments: int = 0
    warning: str | None = None  # indexed only in part, or with damage skipped: the one-line decode warning
    gaps: str | None = None  # JSON [[from_s, to_s], ...]: stretches lost to corrupt data
    settings: str | None = None  # JSON {"fps", "max_segment_s", "encoder", "model"} the segments were made with
    full_hash: str | None = None  # sha256 of the whole file (content_hash samples 3 MiB of it)


@dataclass
class SegmentRecord:
    """One row of the `segments` table (the user-facing part)."""

    video_id: int
    idx: int  # 0..N-1 in time order
    start_s: float
    end_s: float
    start_frame: int  # native-fps frame numbers, end exclusive
    end_frame: int


@dataclass(kw_only=True)
class SegmentData:
    """Everything the store keeps for one segment. d: joint dim, F: frames sampled at 1 FPS, L: latents."""

    idx: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    joint: np.ndarray  # [d] joint image-text space, L2-normalised (the store normalises again)
    frame_times: np.ndarray  # [F] float64 seconds
    frame_joint: np.ndarray  # [F x d] per-frame joint-space embeddings
    routing: np.ndarray | None = None  # [d_route] ST-Connector routing token (trained checkpoint only)
    latents: np.ndarray | None = None  # [L x d_lat] ST-Connector latents (trained checkpoint only)


@dataclass
class VideoRows:
    """One video as the store keeps it: what `IndexStore.export_video` returns and `import_videos` takes.

    N: segments, F: frames sampled at 1 FPS over all segments, L: latents, d: joint dim.
    """

    record: VideoRecord  # its id is assigned when committed
    columns: dict[str, np.ndarray]  # idx, start_s, end_s, start_frame, end_frame, frame_count: [N] each; {}: none
    rows: dict[str, np.ndarray]  # array store -> rows to append: joint [N x d], frame_times [F], frame_joint
    #   [F x d], routing [N x d_route], latents [N x L x d_lat] (fp16, or int8 with latent_scales [N x L])
    dims: dict[str, int] | None  # d_joint, d_route, latent_len, d_lat; None: no segments


@dataclass(frozen=True)
class MergeSummary:
    """What `salova.store.merge.merge_indexes` did."""

    out: Path
    shards: int  # shard indexes read
    videos: int  # videos (indexed or failed) copied into `out`
    segments: int  # segments copied
    superseded: int  # copies dropped because a newer copy of the same path existed
