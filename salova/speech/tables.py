"""The speech tables in ``index.duckdb`` (documented in docs/index-schema.md), written and read.

Added beside ``videos`` / ``segments`` without changing them (schema version 1 is additive). One video's
speech is written in one transaction while the index writer holds the lock; readers hold the database only
while loading. Rows are keyed by ``videos.id``: a re-indexed (changed) file gets a new id, and the rows of
ids no longer indexed are deleted at the next write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salova.speech.chunks import Chunk
from salova.speech.models import SpeechFingerprint
from salova.speech.transcribe import Transcript
from salova.store.layout import DB_FILE
from salova.store.schema import UPSERT_META, connect, transaction

META_KEY = "speech"  # meta key: the speech channel's fingerprint (JSON)

DDL = (
    """CREATE TABLE IF NOT EXISTS speech_videos (
        video_id       BIGINT PRIMARY KEY,
        whisper        TEXT NOT NULL,
        language       TEXT,
        audio_s        DOUBLE NOT NULL,
        num_lines      INTEGER NOT NULL,
        note           TEXT,
        transcribed_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS transcripts (
        video_id BIGINT NOT NULL,
        line     INTEGER NOT NULL,
        segment  INTEGER NOT NULL,
        start_s  DOUBLE NOT NULL,
        end_s    DOUBLE NOT NULL,
        text     TEXT NOT NULL,
        vec      FLOAT[],
        PRIMARY KEY (video_id, line)
    )""",
    """CREATE TABLE IF NOT EXISTS words (
        video_id BIGINT NOT NULL,
        line     INTEGER NOT NULL,
        idx      INTEGER NOT NULL,
        start_s  DOUBLE NOT NULL,
        end_s    DOUBLE NOT NULL,
        word     TEXT NOT NULL,
        prob     DOUBLE,
        PRIMARY KEY (video_id, line, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS speech_chunks (
        video_id   BIGINT NOT NULL,
        chunk      INTEGER NOT NULL,
        segment    INTEGER NOT NULL,
        first_line INTEGER NOT NULL,
        last_line  INTEGER NOT NULL,
        start_s    DOUBLE NOT NULL,
        end_s      DOUBLE NOT NULL,
        text       TEXT NOT NULL,
        vec        FLOAT[] NOT NULL,
        PRIMARY KEY (video_id, chunk)
    )""",
)
TABLES = ("speech_videos", "transcripts", "words", "speech_chunks")
_LIVE = "video_id = ? OR video_id NOT IN (SELECT id FROM videos WHERE status = 'indexed')"
# One statement per table, spelled out: no SQL is built from values at run time.
DELETE_STALE = (
    "DELETE FROM speech_videos WHERE " + _LIVE,
    "DELETE FROM transcripts WHERE " + _LIVE,
    "DELETE FROM words WHERE " + _LIVE,
    "DELETE FROM speech_chunks WHERE " + _LIVE,
)


def _has_tables(con) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'speech_videos'") \
        .fetchone()[0] > 0


def write_video(root: Path, video_id: int, transcript: Transcript, line_segments: list[int], chunks: list[Chunk],
                vecs: np.ndarray | None, whisper: str, fingerprint: SpeechFingerprint | None, *,
                timeout: float = 60.0) -> None:
    """Replace ``video_id``'s speech rows (one transaction); drop rows of videos no longer indexed.

    ``vecs`` [lines + chunks x d]: the lines' vectors, then the chunks'.
    """
    lines = transcript.lines
    words = [(video_id, li, wi, w.start_s, w.end_s, w.text, w.prob)
             for li, line in enumerate(lines) for wi, w in enumerate(line.words)]
    with connect(root / DB_FILE, read_only=False, timeout=timeout) as con, transaction(con):
        for statement in DDL:
            con.execute(statement)
        if fingerprint is not None:  # None: nothing was embedded (no audio, silence)
            con.execute(UPSERT_META, [META_KEY, fingerprint.to_json()])
        for statement in DELETE_STALE:
            con.execute(statement, [video_id])
        con.execute("INSERT INTO speech_videos VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
                    [video_id, whisper, transcript.language, transcript.audio_s, len(lines), transcript.note])
        if lines:
            con.executemany("INSERT INTO transcripts VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(video_id, i, line_segments[i], ln.start_s, ln.end_s, ln.text, vecs[i].tolist())
                             for i, ln in enumerate(lines)])
        if words:
            con.executemany("INSERT INTO words VALUES (?, ?, ?, ?, ?, ?, ?)", words)
        if chunks:
            con.executemany(
                "INSERT INTO speech_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(video_id, i, c.segment, c.first_line, c.last_line, c.start_s, c.end_s, c.text,
                  vecs[len(lines) + i].tolist()) for i, c in enumerate(chunks)],
            )


def read_fingerprint(root: Path, *, timeout: float = 10.0) -> tuple[SpeechFingerprint | None, set[int]]:
    """The index's speech fingerprint (None: no speech yet) and the ids of videos whose speech is stored."""
    with connect(root / DB_FILE, read_only=True, timeout=timeout) as con:
        if not _has_tables(con):
            return None, set()
        row = con.execute("SELECT value FROM meta WHERE key = ?", [META_KEY]).fetchone()
        done = {int(v) for (v,) in con.execute("SELECT video_id FROM speech_videos").fetchall()}
    return (SpeechFingerprint.from_json(row[0]) if row else None), done


@dataclass
class SpeechRows:
    """Every live line and chunk of the index (what the speech channel matches), loaded once per reader."""

    video_id: np.ndarray  # [c] int64
    segment: np.ndarray  # [c] int32
    first_line: np.ndarray  # [c] int32
    start_s: np.ndarray  # [c] float64
    text: list[str]  # [c]
    vecs: np.ndarray  # [c x d] float32, L2-normalised


def read_chunks(root: Path, *, timeout: float = 10.0) -> SpeechRows | None:
    with connect(root / DB_FILE, read_only=True, timeout=timeout) as con:
        if not _has_tables(con):
            return None
        rows = con.execute(
            "SELECT u.* FROM (SELECT video_id, segment, first_line, start_s, text, vec FROM speech_chunks "
            "UNION ALL SELECT video_id, segment, line, start_s, text, vec FROM transcripts) u "
            "JOIN videos v ON v.id = u.video_id AND v.status = 'indexed' ORDER BY u.video_id, u.start_s"
        ).fetchall()
    if not rows:
        return None
    vid, seg, first, start, text, vec = zip(*rows, strict=True)
    return SpeechRows(np.asarray(vid, np.int64), np.asarray(seg, np.int32), np.asarray(first, np.int32),
                      np.asarray(start, np.float64), list(text), np.asarray(vec, np.float32))


def read_lines(root: Path, video_id: int, *, timeout: float = 10.0) -> list[tuple[float, float, str, float]]:
    """``[(start_s, end_s, text, first_word_start_s)]`` of one video in time order (empty: none stored)."""
    with connect(root / DB_FILE, read_only=True, timeout=timeout) as con:
        if not _has_tables(con):
            return []
        return con.execute(
            "SELECT t.start_s, t.end_s, t.text, coalesce(min(w.start_s), t.start_s) FROM transcripts t "
            "LEFT JOIN words w ON w.video_id = t.video_id AND w.line = t.line WHERE t.video_id = ? "
            "GROUP BY t.line, t.start_s, t.end_s, t.text ORDER BY t.line", [video_id]
        ).fetchall()


def read_words(root: Path, video_id: int, *, timeout: float = 10.0) -> list[tuple[int, float, float, str]]:
    """``[(line, start_s, end_s, word)]`` of one video in time order."""
    with connect(root / DB_FILE, read_only=True, timeout=timeout) as con:
        if not _has_tables(con):
            return []
        return con.execute("SELECT line, start_s, end_s, word FROM words WHERE video_id = ? ORDER BY line, idx",
                           [video_id]).fetchall()
