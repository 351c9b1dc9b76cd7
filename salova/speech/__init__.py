"""The speech channel: what is said in a video, transcribed with word times, searchable by meaning and words.

    audio.py       the audio track decoded with PyAV (16 kHz mono float32)
    models.py      the Whisper model and the sentence encoder: defaults, loading, the channel's fingerprint
    transcribe.py  faster-whisper (int8 on CPU, VAD, word timestamps) -> Transcript (lines, words)
    chunks.py      transcript lines -> text chunks of a few sentences aligned to the video's segments
    tables.py      the speech tables in index.duckdb (docs/index-schema.md): write one video, read them back
    indexing.py    the hook `salova index` calls once per video (transcribe only when speech is missing)
    channel.py     SpeechScorer (dense + BM25) and what a speech match says about a moment
    export.py      a transcript as txt, srt, vtt or json
"""
