"""The speech pass of ``salova index``: one call per video, after its visual pass.

A video whose speech is already stored (``speech_videos``) costs nothing; one that lacks it (a new video, or
an index built before speech or with ``--no-speech``) is transcribed and its rows committed, with no visual
re-encode. Models load on the first video that needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from salova.errors import FingerprintMismatchError
from salova.speech import tables
from salova.speech.audio import load_audio
from salova.speech.chunks import make_chunks, segment_of
from salova.speech.models import PACKAGED_TEXT_ENCODER, SpeechFingerprint, TextEncoder, default_whisper
from salova.speech.transcribe import Transcriber, unheard

logger = logging.getLogger(__name__)


@dataclass
class SpeechOptions:
    enabled: bool = True  # False: --no-speech
    model: str | None = None  # Whisper dir or name (default: the packaged one, when installed)
    text_encoder: str | None = None  # sentence-transformers dir or id (default: the index's, else MiniLM)
    language: str | None = None  # e.g. "en"; None: detected per video
    device: str = "cpu"


class SpeechIndexer:
    """Transcribes, chunks, embeds and commits the speech of videos in an index the caller is writing."""

    def __init__(self, root: Path, options: SpeechOptions):
        self.root, self.options = root, options
        self.whisper = options.model or default_whisper()
        stored, self.done = tables.read_fingerprint(root)
        self.text_spec = options.text_encoder or (stored.text_encoder if stored else PACKAGED_TEXT_ENCODER)
        if stored is not None and stored.text_encoder != self.text_spec:
            raise FingerprintMismatchError(
                f"the index's speech was embedded with {stored.text_encoder}, not {self.text_spec}: use "
                f"--text-encoder {stored.text_encoder}, or another --index"
            )
        self._transcriber: Transcriber | None = None
        self._encoder: TextEncoder | None = None
        self._fingerprint: SpeechFingerprint | None = None

    @property
    def available(self) -> bool:
        return self.whisper is not None

    def _load(self) -> None:
        if self._transcriber is None:
            self._transcriber = Transcriber(self.whisper, self.options.language, device=self.options.device)
            self._encoder = TextEncoder(self.text_spec, device=self.options.device)
            self._fingerprint = SpeechFingerprint(self.whisper, self.text_spec, self._encoder.digest(),
                                                  self._encoder.dim)

    def after_video(self, store, path: Path, bar: tqdm | None = None) -> int | None:
        """Transcribe ``path`` (already committed by the visual pass) unless its speech is stored.

        Returns the number of transcript lines written, or None when nothing was done.
        """
        rec = store.get_video(str(path))
        if rec is None or rec.status != "indexed" or rec.id in self.done:
            return None
        samples = load_audio(path)
        transcript = unheard(samples)  # no audio track or silence: no models needed
        if transcript is None:
            self._load()
        if bar is not None:
            bar.reset(total=round(rec.duration_s or 0) or None)
            bar.set_description(f"speech {path.name[:21]}")
            bar.unit = "s"
        covered = [0.0]

        def progress(seconds: float) -> None:
            if bar is not None and seconds > covered[0]:
                bar.update(round(seconds) - round(covered[0]))
                covered[0] = seconds

        if transcript is None:
            transcript = self._transcriber.transcribe_samples(samples, on_progress=progress)
        segs = store.segments(rec.id)
        starts = [s.start_s for s in segs]
        chunks = make_chunks(transcript.lines, starts)
        texts = [ln.text for ln in transcript.lines] + [c.text for c in chunks]
        vecs = self._encoder.encode(texts) if texts else None  # [lines + chunks x d]
        tables.write_video(store.root, rec.id, transcript, [segment_of(starts, ln.start_s) for ln in transcript.lines],
                           chunks, vecs, self.whisper, self._fingerprint)
        self.done.add(rec.id)
        logger.info("%s: %d transcript lines (%s)", path.name, len(transcript.lines), transcript.note or "speech")
        return len(transcript.lines)
