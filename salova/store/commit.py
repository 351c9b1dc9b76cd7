"""The only way an index changes: a two-phase commit (arrays first, then one DuckDB transaction).

1. append the new rows to array files past the committed rows (or into a new generation) and fsync them;
2. in one DuckDB transaction, write the rows that point at them and the new row counts in `meta`.

A crash before 2 commits leaves only bytes no row points at, which the next writer removes; any failure
before 2 commits takes 1 back (`Change.undo`), so the index stays as it was. Adding, replacing and
removing videos (`commit_videos`, also what a merge does) and compaction (`compact`) are both a `Change`
run by `run_change`.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np

from salova.errors import IndexStoreError
from salova.store import schema
from salova.store.arrays import ArrayFile, fsync_dir
from salova.store.layout import DB_FILE, SEGMENT_STORES, is_leftover
from salova.store.records import VideoRecord, VideoRows
from salova.store.rows import LazyRows, frame_starts
from salova.store.schema import INSERT_SEGMENTS, INSERT_VIDEO, UPSERT_META
from salova.store.snapshot import Segments, Snapshot

log = logging.getLogger("salova.store")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------------------------------ the sequence


@dataclass
class Change:
    """One commit: rows to append to array files, then the SQL that points at them, in one transaction."""

    what: str  # for messages: "index commit", "compaction"
    files: Iterable[ArrayFile]  # the files `append` writes; fsynced before the transaction
    append: Callable[[], None]  # phase 1: write the rows
    undo: Callable[[], None]  # take phase 1 back (the transaction did not commit)
    sql: Callable[[duckdb.DuckDBPyConnection], None]  # phase 2, inside the transaction
    meta: dict[str, str]  # meta keys the transaction sets (row counts, seq, ...)
    after: Callable[[], None] = lambda: None  # once committed, still inside the database hold


def run_change(root: Path, change: Change, *, timeout: float) -> None:
    """Append and fsync, then one transaction; on any failure before COMMIT, undo and raise IndexStoreError
    (OSError and DuckDB errors become one-line messages saying that the index is unchanged)."""
    try:
        change.append()
        for f in change.files:
            f.sync()
    except OSError as e:
        change.undo()
        raise os_error(root, e) from e
    except BaseException:
        change.undo()
        raise
    committed = False
    try:
        with schema.connect(root / DB_FILE, read_only=False, timeout=timeout) as con:
            with schema.transaction(con):
                change.sql(con)
                con.executemany(UPSERT_META, list(change.meta.items()))
            committed = True
            change.after()
    except (duckdb.Error, OSError, IndexStoreError) as e:
        if committed:
            log.warning("%s is durable but closing the database failed: %s", change.what, e)
            return
        change.undo()
        if isinstance(e, IndexStoreError):
            raise
        raise store_error(root, e) from e
    except BaseException:
        if not committed:
            change.undo()
        raise


def os_error(root: Path, e: OSError) -> IndexStoreError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return IndexStoreError(
            f"no space left on the device holding the index at {root}; free space and re-run (the index is unchanged)"
        )
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return IndexStoreError(
            f"cannot write to the index at {root} ({e.strerror}); make it writable or pass another "
            "--index (the index is unchanged)"
        )
    return IndexStoreError(f"could not write the index at {root}: {e} (the index is unchanged)")


def store_error(root: Path, e: Exception) -> IndexStoreError:
    if isinstance(e, OSError):
        return os_error(root, e)
    msg = str(e)
    if "No space left" in msg:
        return os_error(root, OSError(errno.ENOSPC, "No space left on device"))
    if "Read-only file system" in msg or "Permission denied" in msg:
        return os_error(root, OSError(errno.EACCES, "read-only or permission denied"))
    first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
    return IndexStoreError(f"could not commit to the index at {root}: {first} (the index is unchanged)")


# ------------------------------------------------------------------------------- adding videos


def commit_videos(snap: Snapshot, writes: list[VideoRows], remove: list[str], *, timeout: float) -> list[int]:
    """Store `writes` (each replacing any video of its path; the last write of a path wins) and forget the
    videos at `remove`, in one commit; update `snap`. Returns the new video ids, in order."""
    latest = {w.record.path: w for w in writes}
    writes = list(latest.values())
    dims = snap.dims()
    for w in writes:
        if w.dims is None:
            continue
        if dims is None:
            dims = w.dims
        elif w.dims != dims:
            raise ValueError(f"{w.record.path}: segment data has dims {w.dims}, the index has {dims}")
    first_rows = snap.dims() is None and dims is not None
    files = snap.make_files(dims, snap.generation) if first_rows else snap.files

    seg0, frame0 = snap.meta_int("seg_rows") or 0, snap.meta_int("frame_rows") or 0
    seg_at, frame_at, plan = seg0, frame0, []  # plan: (first segment row, first frame row) per write
    for w in writes:
        plan.append((seg_at, frame_at))
        seg_at += len(w.columns.get("idx", ()))
        frame_at += int(w.columns["frame_count"].sum()) if w.columns else 0

    def append() -> None:
        for name, f in files.items():
            at = seg0 if name in SEGMENT_STORES else frame0
            for rows in (w.rows[name] for w in writes if name in w.rows):
                if isinstance(rows, LazyRows):  # one segment at a time
                    for i, row in enumerate(rows):
                        f.append(at + i, row[None])
                else:
                    f.append(at, rows)
                at += len(rows)

    def undo() -> None:
        for name, f in files.items():
            with suppress(OSError):
                f.truncate(seg0 if name in SEGMENT_STORES else frame0)
            if first_rows:
                f.close()  # files of a first commit; the next writer open removes them

    now = utcnow()
    next_id = snap.meta_int("next_video_id") or 1
    records = [replace(w.record, id=next_id + i, indexed_at=w.record.indexed_at or now) for i, w in enumerate(writes)]
    gone = sorted(set(remove) | set(latest))
    meta = {"seq": str(snap.seq + 1), "seg_rows": str(seg_at), "frame_rows": str(frame_at),
            "next_video_id": str(next_id + len(writes))}  # fmt: skip
    if first_rows:
        meta.update({k: str(v) for k, v in dims.items()})
    change = Change(
        "index commit", files.values(), append, undo,
        sql=lambda con: insert_videos(con, gone, records, writes, plan), meta=meta,
    )  # fmt: skip
    run_change(snap.root, change, timeout=timeout)

    for path in gone:
        old = snap.videos.pop(path, None)
        if old is not None:
            snap.by_id.pop(old.id, None)
            snap.segments.pop(old.id, None)
    for rec, w, (s_first, f_first) in zip(records, writes, plan, strict=True):
        snap.videos[rec.path] = rec
        snap.by_id[rec.id] = rec
        if w.columns:
            c = w.columns
            snap.segments[rec.id] = Segments(
                idx=c["idx"], start_s=c["start_s"], end_s=c["end_s"], start_frame=c["start_frame"],
                end_frame=c["end_frame"], vec_row=np.arange(s_first, s_first + len(c["idx"]), dtype=np.int64),
                frame_row=frame_starts(f_first, c["frame_count"]), frame_count=c["frame_count"],
            )  # fmt: skip
    snap.meta.update(meta)
    snap.files = files
    return [r.id for r in records]


def insert_videos(
    con: duckdb.DuckDBPyConnection,
    gone: list[str],
    records: list[VideoRecord],
    writes: list[VideoRows],
    plan: list[tuple[int, int]],
) -> None:
    """Delete the videos at `gone` with their segments, insert `records` with theirs at the `plan` rows."""
    if gone:
        con.execute(
            "DELETE FROM segments WHERE video_id IN (SELECT id FROM videos WHERE path IN (SELECT UNNEST(?::TEXT[])))",
            [gone],
        )
        con.execute("DELETE FROM videos WHERE path IN (SELECT UNNEST(?::TEXT[]))", [gone])
    for rec, w, (s_first, f_first) in zip(records, writes, plan, strict=True):
        con.execute(
            INSERT_VIDEO,
            [rec.id, rec.path, rec.size, rec.mtime_ns, rec.content_hash, rec.duration_s, rec.fps,
             rec.num_frames, rec.status, rec.error, rec.indexed_at, rec.shard, rec.num_segments, rec.warning, rec.gaps,
             rec.settings, rec.full_hash],
        )  # fmt: skip
        if not w.columns:
            continue
        c = w.columns
        n = len(c["idx"])
        con.execute(
            INSERT_SEGMENTS,
            [[rec.id] * n, c["idx"].tolist(), c["start_s"].tolist(), c["end_s"].tolist(),
             c["start_frame"].tolist(), c["end_frame"].tolist(), list(range(s_first, s_first + n)),
             frame_starts(f_first, c["frame_count"]).tolist(), c["frame_count"].tolist()],
        )  # fmt: skip


# ------------------------------------------------------------------------- recovery and compaction


def recover(snap: Snapshot) -> None:
    """Writer open: remove what a crashed writer left (uncommitted tails, old generations, temp files)."""
    live = {f.path.name for f in snap.files.values()}
    try:
        leftovers = [p for p in snap.root.iterdir() if is_leftover(p.name, live, snap.seq) and not p.is_dir()]
        for p in leftovers:
            log.info("removing leftover index file %s", p.name)
            p.unlink()
        if leftovers:
            fsync_dir(snap.root)
        for name, f in snap.files.items():
            f.recover(snap.committed_rows(name))
    except OSError as e:
        raise os_error(snap.root, e) from e


def garbage_exceeds(snap: Snapshot, min_bytes: int) -> bool:
    """Rows no segment points at hold more array bytes than the live rows, and at least `min_bytes`."""
    live_segs, live_frames = snap.live_counts()
    garbage = live = 0
    for name, f in snap.files.items():
        used = live_segs if name in SEGMENT_STORES else live_frames
        garbage += (snap.committed_rows(name) - used) * f.row_bytes
        live += used * f.row_bytes
    return garbage > live and garbage >= min_bytes


def compact(snap: Snapshot, *, timeout: float) -> None:
    """Copy the live rows into generation G+1, switch to it in one commit, delete generation G; update `snap`."""
    dims = snap.dims()
    if dims is None:
        return
    old = snap.files
    old_views = {name: snap.view(name) for name in old}
    new = snap.make_files(dims, snap.generation + 1)
    new_segs: dict[int, Segments] = {}
    remap: dict[str, list[int]] = {"video_id": [], "idx": [], "vec_row": [], "frame_row": []}

    def append() -> None:
        seg_at = frame_at = 0
        for vid in sorted(snap.segments):
            s = snap.segments[vid]
            n, frames = len(s), s.frame_rows()
            for name, f in new.items():
                src = s.vec_row if name in SEGMENT_STORES else frames
                f.append(seg_at if name in SEGMENT_STORES else frame_at, old_views[name][src])
            new_segs[vid] = replace(s, vec_row=np.arange(seg_at, seg_at + n, dtype=np.int64),
                                    frame_row=frame_starts(frame_at, s.frame_count))  # fmt: skip
            remap["video_id"] += [vid] * n
            remap["idx"] += s.idx.tolist()
            remap["vec_row"] += new_segs[vid].vec_row.tolist()
            remap["frame_row"] += new_segs[vid].frame_row.tolist()
            seg_at, frame_at = seg_at + n, frame_at + len(frames)

    def undo() -> None:
        _delete(new.values())

    def sql(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "UPDATE segments SET vec_row = r.vec_row, frame_row = r.frame_row FROM (SELECT "
            "UNNEST(?::BIGINT[]) AS video_id, UNNEST(?::INTEGER[]) AS idx, UNNEST(?::BIGINT[]) AS vec_row, "
            "UNNEST(?::BIGINT[]) AS frame_row) r WHERE segments.video_id = r.video_id AND segments.idx = r.idx",
            [remap["video_id"], remap["idx"], remap["vec_row"], remap["frame_row"]],
        )

    live_segs, live_frames = snap.live_counts()
    meta = {"seq": str(snap.seq + 1), "generation": str(snap.generation + 1),
            "seg_rows": str(live_segs), "frame_rows": str(live_frames)}  # fmt: skip

    def after() -> None:
        # Still inside the hold: no reader can be between reading the generation and mapping its files.
        _delete(old.values())

    run_change(snap.root, Change("compaction", new.values(), append, undo, sql, meta, after), timeout=timeout)
    snap.meta.update(meta)
    snap.segments = new_segs
    snap.files = new


def _delete(files: Iterable[ArrayFile]) -> None:
    for f in files:
        f.close()
        with suppress(OSError):
            f.path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- moving videos

MOVE_VIDEO = "UPDATE videos SET path = ?, size = ?, mtime_ns = ? WHERE path = ?"


def move_videos(snap: Snapshot, moves: list[tuple[str, str, int, int]], *, timeout: float) -> None:
    """Re-point videos at new paths, (old, new, size, mtime_ns) each, in one commit: no array rows change."""
    change = Change(
        "move", [], lambda: None, lambda: None,
        sql=lambda con: con.executemany(MOVE_VIDEO, [[new, size, mtime, old] for old, new, size, mtime in moves]),
        meta={"seq": str(snap.seq + 1)},
    )  # fmt: skip
    run_change(snap.root, change, timeout=timeout)
    for old, new, size, mtime in moves:
        rec = replace(snap.videos.pop(old), path=new, size=size, mtime_ns=mtime)
        snap.videos[new] = rec
        snap.by_id[rec.id] = rec
    snap.meta["seq"] = str(snap.seq + 1)
