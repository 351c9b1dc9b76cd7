"""The DuckDB schema of an index (documented in docs/index-schema.md), its creation, and short-lived
connections to it.

DuckDB lets one process open a database file read-write, or any number of processes open it read-only,
never both. The index writer therefore opens the file only for the length of one commit and readers only
for the length of one snapshot; both wait out the other's brief hold here. Every hold goes through
`connect`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

from salova.errors import IndexLockedError, IndexStoreError
from salova.store.arrays import fsync_dir

SCHEMA_VERSION = 1  # meta 'schema_version': the SQL tables below (additive changes only within a version)
FORMAT_VERSION = 1  # meta 'format_version': the whole directory (tables, array files, caches); absent means 1
DIM_KEYS = ("d_joint", "d_route", "latent_len", "d_lat")  # meta keys of the stored widths; 0: not stored

DDL = (
    """CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT
    )""",
    """CREATE TABLE videos (
        id           BIGINT PRIMARY KEY,
        path         TEXT NOT NULL UNIQUE,
        size         BIGINT NOT NULL,
        mtime_ns     BIGINT NOT NULL,
        content_hash TEXT NOT NULL,
        duration_s   DOUBLE,
        fps          DOUBLE,
        num_frames   BIGINT,
        status       TEXT NOT NULL CHECK (status IN ('indexed', 'failed')),
        error        TEXT,
        indexed_at   TIMESTAMP NOT NULL,
        shard        TEXT,
        num_segments INTEGER NOT NULL,
        warning      TEXT,
        gaps         TEXT,
        settings     TEXT,
        full_hash    TEXT
    )""",
    """CREATE TABLE segments (
        video_id    BIGINT NOT NULL,
        idx         INTEGER NOT NULL,
        start_s     DOUBLE NOT NULL,
        end_s       DOUBLE NOT NULL,
        start_frame BIGINT NOT NULL,
        end_frame   BIGINT NOT NULL,
        vec_row     BIGINT NOT NULL,
        frame_row   BIGINT NOT NULL,
        frame_count INTEGER NOT NULL,
        PRIMARY KEY (video_id, idx)
    )""",
)

VIDEO_COLUMNS = (
    "id, path, size, mtime_ns, content_hash, duration_s, fps, num_frames, status, error, indexed_at, shard, "
    "num_segments, warning, gaps, settings, full_hash"
)
SEGMENT_COLUMNS = "video_id, idx, start_s, end_s, start_frame, end_frame, vec_row, frame_row, frame_count"
INSERT_VIDEO = f"INSERT INTO videos ({VIDEO_COLUMNS}) VALUES ({', '.join('?' * len(VIDEO_COLUMNS.split(',')))})"
INSERT_SEGMENTS = (
    f"INSERT INTO segments ({SEGMENT_COLUMNS}) SELECT UNNEST(?::BIGINT[]), UNNEST(?::INTEGER[]), "
    "UNNEST(?::DOUBLE[]), UNNEST(?::DOUBLE[]), UNNEST(?::BIGINT[]), UNNEST(?::BIGINT[]), UNNEST(?::BIGINT[]), "
    "UNNEST(?::BIGINT[]), UNNEST(?::INTEGER[])"
)
UPSERT_META = "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
# Columns added to `videos` after indexes were first written (additive, NULL in older rows). Readers read
# NULL for those an old index lacks; its next writer adds them (`add_missing_columns`).
ADD_VIDEO_COLUMNS = {
    "warning": "ALTER TABLE videos ADD COLUMN IF NOT EXISTS warning TEXT",
    "gaps": "ALTER TABLE videos ADD COLUMN IF NOT EXISTS gaps TEXT",
    "settings": "ALTER TABLE videos ADD COLUMN IF NOT EXISTS settings TEXT",
    "full_hash": "ALTER TABLE videos ADD COLUMN IF NOT EXISTS full_hash TEXT",
}


def read_videos(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[str]]:
    """Every `videos` row as {column: value} (columns an older index lacks read as None), and those columns."""
    cur = con.execute("SELECT * FROM videos")
    names = [d[0] for d in cur.description]
    missing = [c for c in ADD_VIDEO_COLUMNS if c not in names]
    wanted = [c.strip() for c in VIDEO_COLUMNS.split(",")]
    rows = (dict(zip(names, r, strict=True)) for r in cur.fetchall())
    return [{c: row.get(c) for c in wanted} for row in rows], missing


def add_missing_columns(con: duckdb.DuckDBPyConnection, missing: list[str]) -> None:
    """Migrate an older index in place: add the `videos` columns it lacks (one transaction)."""
    with transaction(con):
        for c in missing:
            con.execute(ADD_VIDEO_COLUMNS[c])


# DuckDB's file lock is per process; this keeps two stores of one process from overlapping their holds.
_PROCESS_LOCK = threading.RLock()
_BUSY = ("Could not set lock", "Conflicting lock", "different configuration")


def new_index_meta(fingerprint: str, created_at: str, latent_dtype: str, frame_dtype: str) -> dict[str, str | None]:
    """The meta table of an empty index (keys documented in docs/index-schema.md)."""
    return {
        "schema_version": str(SCHEMA_VERSION),
        "fingerprint": fingerprint,
        "created_at": created_at,
        "latent_dtype": latent_dtype,
        "frame_dtype": frame_dtype,
        "generation": "0",
        "seq": "0",
        "seg_rows": "0",
        "frame_rows": "0",
        "next_video_id": "1",
        **dict.fromkeys(DIM_KEYS),
        "format_version": str(FORMAT_VERSION),
    }


def create_database(path: Path, meta: dict[str, str | None]) -> None:
    """Write a new database with the schema and `meta` under a temporary name, fsync it and rename it to
    `path`: the index appears complete or not at all."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
            stale.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            for statement in DDL:
                con.execute(statement)
            con.executemany(UPSERT_META, list(meta.items()))
        finally:
            con.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back if the body (or the commit) fails."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


@contextmanager
def connect(db_path: Path, *, read_only: bool, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection held only inside the `with`; waits up to `timeout` s for another process's hold."""
    with _PROCESS_LOCK:
        con = _open(db_path, read_only=read_only, timeout=timeout)
        try:
            yield con
        finally:
            con.close()


def _open(db_path: Path, *, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(db_path), read_only=read_only)
        except duckdb.Error as e:
            msg = str(e)
            if not any(s in msg for s in _BUSY):
                first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
                raise IndexStoreError(f"cannot open index database {db_path}: {first}") from e
            if time.monotonic() >= deadline:
                m = re.search(r"PID (\d+)", msg)
                holder = f"pid {m.group(1)}" if m else "another process"
                raise IndexLockedError(
                    f"index database {db_path} has been held open by {holder} for over {timeout:g}s; "
                    "close that process (e.g. a `duckdb` shell on the file) and retry"
                ) from e
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
