"""Tests of the persistent index (salova.store) on real DuckDB + FAISS with tiny dims.

Writers that must crash or hold a lock run in subprocesses started with `_worker_main`.
"""

from __future__ import annotations

import ast
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pytest

import salova.store.arrays as arrays_mod
import salova.store.commit as commit_mod
import salova.store.schema as schema_mod
import salova.store.store as store_mod
from salova.errors import FingerprintMismatchError, IndexLockedError, IndexStoreError
from salova.store.layout import DB_FILE
from salova.store.merge import merge_indexes
from salova.store.store import IndexStore, ModelFingerprint, SegmentData, SegmentRecord, default_index_dir

D_JOINT, D_ROUTE, LAT_L, LAT_D = 16, 8, 4, 8
FP = ModelFingerprint.from_parts("test/encoder", "test/checkpoint")
PLAN_N = 16  # videos in the write plan the crash tests replay
TESTS_DIR = Path(__file__).resolve().parent


def make_video(i: int, version: int = 0, *, routing: bool = True, latents: bool = True) -> tuple[dict, list]:
    """Deterministic video `i` at `version`: (put_video keyword args, segments)."""
    rng = np.random.default_rng([i, version])
    n = 2 + (i + version) % 4
    segs = []
    for k in range(n):
        f = 1 + (k + i) % 3
        segs.append(
            SegmentData(
                idx=k, start_s=10.0 * k, end_s=10.0 * k + 10, start_frame=300 * k, end_frame=300 * k + 300,
                joint=rng.standard_normal(D_JOINT), frame_times=10.0 * k + np.arange(f, dtype=np.float64),
                frame_joint=rng.standard_normal((f, D_JOINT)),
                routing=rng.standard_normal(D_ROUTE) if routing else None,
                latents=rng.standard_normal((LAT_L, LAT_D)) if latents else None,
            )
        )  # fmt: skip
    meta = {
        "path": f"/lib/v{i:03d}.mp4", "size": 1000 + i, "mtime_ns": 10**9 * (version + 1),
        "content_hash": f"h{i}v{version}", "duration_s": 10.0 * n, "fps": 30.0, "num_frames": 300 * n,
    }  # fmt: skip
    return meta, segs


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def put(store: IndexStore, i: int, version: int = 0, **kw) -> int:
    meta, segs = make_video(i, version)
    return store.put_video(**meta, segments=segs, **kw)


def run_plan(root: Path, *, pause: float = 0.0, n: int = PLAN_N) -> None:
    """Idempotent write plan: add, replace the odd ones, prune every 4th, record a failure, compact."""
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP, lock_timeout=30) as st:

        def ensure(i: int, version: int) -> None:
            meta, segs = make_video(i, version)
            rec = st.get_video(meta["path"])
            if rec is None or rec.content_hash != meta["content_hash"]:
                st.put_video(**meta, segments=segs)
                time.sleep(pause)

        for i in range(n):
            ensure(i, 0)
        for i in range(1, n, 2):
            ensure(i, 1)
        st.remove_videos([f"/lib/v{i:03d}.mp4" for i in range(0, n, 4)])
        if st.get_video("/lib/broken.mp4") is None:
            st.put_failure("/lib/broken.mp4", 1, 1, "hb", "cannot decode")
        st.compact()


def assert_video_matches(store: IndexStore, path: str) -> None:
    """The stored video equals make_video(i, version) named by its content hash, array by array."""
    rec = store.get_video(path)
    i, version = (int(x) for x in rec.content_hash[1:].split("v"))
    meta, segs = make_video(i, version)
    assert (rec.path, rec.size, rec.mtime_ns, rec.num_segments) == (
        meta["path"], meta["size"], meta["mtime_ns"], len(segs),
    )  # fmt: skip
    assert store.segments(rec.id) == [
        SegmentRecord(rec.id, s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame) for s in segs
    ]
    np.testing.assert_allclose(store.load_joint(rec.id), _unit(np.stack([s.joint for s in segs])), atol=1e-6)
    np.testing.assert_array_equal(store.load_routing(rec.id), np.stack([s.routing for s in segs]).astype(np.float32))
    np.testing.assert_array_equal(store.load_latents(rec.id), np.stack([s.latents for s in segs]).astype(np.float16))
    frames = store.load_frames(rec.id)
    assert len(frames) == len(segs)
    for (t, fj), s in zip(frames, segs, strict=True):
        np.testing.assert_array_equal(t, s.frame_times)
        np.testing.assert_allclose(fj, _unit(s.frame_joint), atol=2e-3)


def check_consistent(root: Path) -> None:
    """What a crash may leave: every video complete and exactly as written, no orphan rows."""
    with IndexStore.open(root, lock_timeout=30) as st:
        for rec in st.videos("indexed"):
            assert_video_matches(st, rec.path)
        for rec in st.videos("failed"):
            assert st.segments(rec.id) == []
        live = sum(r.num_segments for r in st.videos())
        assert st.stats()["segments"] == live
        if live:
            assert len(st.search_joint(np.ones(D_JOINT), 3)) == min(3, live)
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        orphans = con.execute("SELECT count(*) FROM segments WHERE video_id NOT IN (SELECT id FROM videos)")
        assert orphans.fetchone()[0] == 0
    finally:
        con.close()


def content(root: Path) -> dict:
    """Everything a user can read from an index, keyed by path, without ids and commit times."""
    out = {}
    with IndexStore.open(root) as st:
        for rec in st.videos():
            frames = st.load_frames(rec.id)
            lat = st.load_latents(rec.id)
            out[rec.path] = {
                "record": (rec.size, rec.mtime_ns, rec.content_hash, rec.duration_s, rec.fps, rec.num_frames,
                           rec.status, rec.error, rec.num_segments),
                "segments": [(s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame) for s in st.segments(rec.id)],
                "joint": np.array(st.load_joint(rec.id)),
                "routing": np.array(st.load_routing(rec.id)),
                "latents": None if lat is None else np.array(lat),
                "frame_times": [t for t, _ in frames],
                "frame_joint": [j for _, j in frames],
            }  # fmt: skip
    return out


def assert_same_content(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for path in a:
        for key, value in a[path].items():
            other = b[path][key]
            if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
                assert len(value) == len(other), (path, key)
                for x, y in zip(value, other, strict=True):
                    np.testing.assert_array_equal(x, y, err_msg=f"{path} {key}")
            elif isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, other, err_msg=f"{path} {key}")
            else:
                assert value == other, (path, key)


# ------------------------------------------------------------------------------------ subprocess workers


def _worker_main(argv: list[str]) -> None:
    """Entry point of the subprocess writers: MODE ROOT [ARG]."""
    mode, root = argv[0], Path(argv[1])
    if mode == "hold":
        with IndexStore.open(root, writable=True, create=True, fingerprint=FP):
            print("ready", flush=True)
            time.sleep(60)
    elif mode == "plan":
        print("started", flush=True)
        run_plan(root, pause=float(argv[2]))
    elif mode == "crash":
        # Die at a chosen point of the k-th database hold of this writer (hold 1 is the open).
        point, k = argv[2], int(argv[3])
        calls = 0
        real_connect = schema_mod.connect

        @contextmanager
        def connect(*args, **kwargs):
            nonlocal calls
            calls += 1
            if point == "before_commit" and calls == k:
                os.kill(os.getpid(), signal.SIGKILL)  # rows appended and fsynced, no transaction
            with real_connect(*args, **kwargs) as con:
                yield con
                if point == "after_commit" and calls == k:
                    os.kill(os.getpid(), signal.SIGKILL)  # committed to the WAL, database not closed

        real_insert_videos = commit_mod.insert_videos

        def insert_videos(*args):
            real_insert_videos(*args)
            if point == "in_transaction" and calls == k:
                os.kill(os.getpid(), signal.SIGKILL)  # rows deleted/inserted, no COMMIT

        schema_mod.connect = connect
        commit_mod.insert_videos = insert_videos
        run_plan(root)


def spawn(*args: str) -> subprocess.Popen:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r}); import test_store; test_store._worker_main(sys.argv[1:])"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Content of the write plan run once, uninterrupted."""
    root = tmp_path_factory.mktemp("reference") / "idx"
    run_plan(root)
    return content(root)


# ------------------------------------------------------------------------------------------------ tests


def test_round_trip(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        a = put(st, 1)
        b = put(st, 2, shard="0/2")
        assert st.get_video("/lib/v001.mp4").id == a
        assert_video_matches(st, "/lib/v002.mp4")
    with IndexStore.open(root, fingerprint=FP) as st:
        assert [v.path for v in st.videos()] == ["/lib/v001.mp4", "/lib/v002.mp4"]
        assert st.videos("failed") == []
        rec = st.get_video("/lib/v002.mp4")
        assert (rec.id, rec.status, rec.shard, rec.error) == (b, "indexed", "0/2", None)
        assert rec.indexed_at is not None
        assert_video_matches(st, "/lib/v001.mp4")
        assert_video_matches(st, "/lib/v002.mp4")
        assert isinstance(st.load_latents(a), np.memmap)  # fp16 latents are served from the map
        assert st.load_joint(999).shape == (0, D_JOINT)
        assert st.segments(999) == [] and st.load_frames(999) == []
        s = st.stats()
        n_segments = len(make_video(1)[1]) + len(make_video(2)[1])
        assert (s["videos"], s["failed"], s["segments"], s["garbage_rows"]) == (2, 0, n_segments, 0)
    # The schema is plain SQL.
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        rows = con.execute(
            "SELECT v.path, count(*) FROM segments s JOIN videos v ON v.id = s.video_id GROUP BY v.path ORDER BY 1"
        ).fetchall()
        assert rows == [("/lib/v001.mp4", len(make_video(1)[1])), ("/lib/v002.mp4", len(make_video(2)[1]))]
        assert (
            ModelFingerprint.from_json(con.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0])
            == FP
        )
    finally:
        con.close()


def test_int8_latents_and_zero_shot_index(tmp_path):
    with IndexStore.open(tmp_path / "q", writable=True, create=True, fingerprint=FP, latent_dtype="int8") as st:
        vid = put(st, 3)
        _, segs = make_video(3)
        want = np.stack([s.latents for s in segs]).astype(np.float32)
        got = st.load_latents(vid)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=np.abs(want).max() / 127)
    zero_shot = ModelFingerprint.from_parts("test/encoder")
    with IndexStore.open(tmp_path / "z", writable=True, create=True, fingerprint=zero_shot) as st:
        meta, segs = make_video(4, routing=False, latents=False)
        vid = st.put_video(**meta, segments=segs)
        assert st.load_routing(vid) is None and st.load_latents(vid) is None
        assert st.search_routing(np.ones(D_ROUTE), 3) == []
        assert st.load_joint(vid).shape == (len(segs), D_JOINT)
        with pytest.raises(ValueError, match="dims"):
            put(st, 5)  # routing/latents into an index without them


def test_replace_video_atomically(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        old = put(st, 7, 0)
        put(st, 8, 0)
        with IndexStore.open(root) as snapshot:
            new = put(st, 7, 1)
            assert new != old and st.segments(old) == [] and st.load_joint(old).shape[0] == 0
            assert_video_matches(st, "/lib/v007.mp4")
            # A reader opened before the replace keeps its consistent snapshot until refresh.
            assert snapshot.get_video("/lib/v007.mp4").id == old
            assert_video_matches(snapshot, "/lib/v007.mp4")
            snapshot.refresh()
            assert snapshot.get_video("/lib/v007.mp4").id == new
            assert_video_matches(snapshot, "/lib/v007.mp4")
        assert st.stats()["garbage_rows"] == len(make_video(7, 0)[1])
        # A changed file that now fails to decode loses its old segments.
        failed = st.put_failure("/lib/v008.mp4", 5, 5, "h8bad", "moov atom not found")
        rec = st.get_video("/lib/v008.mp4")
        assert (rec.id, rec.status, rec.error, rec.num_segments) == (failed, "failed", "moov atom not found", 0)
        assert st.segments(failed) == []
        before = {name: f.path for name, f in st._snap.files.items()}
        st.compact()
        assert st.stats()["garbage_rows"] == 0 and st.generation == 1
        assert not any(p.exists() for p in before.values())
        assert_video_matches(st, "/lib/v007.mp4")
    check_consistent(root)
    assert sorted(p.name for p in root.glob("*.g*.*")) == [
        "frame_joint.g1.f16", "frame_times.g1.f64", "joint.g1.f32", "latents.g1.f16", "routing.g1.f32",
    ]  # fmt: skip


def test_prune(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        ids = [put(st, i) for i in range(4)]
        assert st.remove_videos(["/lib/v001.mp4", "/lib/v003.mp4", "/lib/missing.mp4"]) == 2
        assert st.remove_videos([]) == 0
        assert [v.path for v in st.videos()] == ["/lib/v000.mp4", "/lib/v002.mp4"]
        assert st.segments(ids[1]) == []
        hits = {vid for vid, _, _ in st.search_joint(np.ones(D_JOINT), 100)}
        assert hits == {ids[0], ids[2]}
    check_consistent(root)


def test_missing_index_and_fingerprint_mismatch(tmp_path):
    root = tmp_path / "idx"
    with pytest.raises(IndexStoreError, match="no index at .*run `salova index PATH` first"):
        IndexStore.open(root)
    with pytest.raises(IndexStoreError, match="no index at"):
        IndexStore.open(root, writable=True)
    IndexStore.open(root, writable=True, create=True, fingerprint=FP).close()
    other = ModelFingerprint.from_parts("other/encoder", None)
    for writable in (False, True):
        with pytest.raises(FingerprintMismatchError, match=r"built with encoder test/encoder.*rebuild: delete"):
            IndexStore.open(root, writable=writable, fingerprint=other)
    # Equality is by digest; JSON round-trips.
    assert ModelFingerprint("renamed", None, FP.digest) == FP
    assert ModelFingerprint.from_json(FP.to_json()) == FP and hash(ModelFingerprint.from_json(FP.to_json())) == hash(FP)
    with pytest.raises(ValueError):
        ModelFingerprint.from_json('{"encoder": 3}')


def test_default_index_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SALOVA_INDEX", str(tmp_path / "mine"))
    assert default_index_dir() == tmp_path / "mine"
    monkeypatch.delenv("SALOVA_INDEX")
    assert default_index_dir().parts[-2:] == ("salova", "index")


def test_second_writer_waits_then_fails_naming_the_holder(tmp_path):
    root = tmp_path / "idx"
    holder = spawn("hold", str(root))
    try:
        assert holder.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        with pytest.raises(IndexLockedError, match=rf"being written by pid {holder.pid}\b"):
            IndexStore.open(root, writable=True, fingerprint=FP, lock_timeout=0.5)
        assert time.monotonic() - t0 >= 0.5
        with IndexStore.open(root) as reader:  # readers are not held up by the writer's lock
            assert reader.videos() == []
    finally:
        holder.kill()
        holder.wait()
    with IndexStore.open(root, writable=True, fingerprint=FP, lock_timeout=5) as st:  # a dead holder's lock is free
        put(st, 1)


def test_readers_during_a_writer_run_see_only_whole_videos(tmp_path, reference):
    root = tmp_path / "idx"
    writer = spawn("plan", str(root), "0.02")
    seen, slowest = set(), 0.0
    try:
        assert writer.stdout.readline().strip() == "started"
        while writer.poll() is None:
            if not (root / DB_FILE).exists():
                time.sleep(0.01)
                continue
            t0 = time.monotonic()
            with IndexStore.open(root, lock_timeout=30) as st:
                slowest = max(slowest, time.monotonic() - t0)
                for rec in st.videos("indexed"):
                    assert_video_matches(st, rec.path)
                seen.add(st.seq)
                st.search_joint(np.ones(D_JOINT), 5)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert len(seen) >= 3, seen  # snapshots were taken at several points of the run
    assert slowest < 5.0
    assert_same_content(content(root), reference)


@pytest.mark.parametrize(("point", "k"), [("before_commit", 3), ("in_transaction", 4), ("after_commit", 5)])
def test_crash_at_commit_points_then_rerun(tmp_path, reference, point, k):
    root = tmp_path / "idx"
    proc = spawn("crash", str(root), point, str(k))
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    check_consistent(root)
    with IndexStore.open(root) as st:
        # Holds 2.. are commits of videos 0, 1, ...: the one the crash interrupted is absent or complete.
        committed = k - 2 if point == "before_commit" or point == "in_transaction" else k - 1
        assert len(st.videos()) == committed
    run_plan(root)
    assert_same_content(content(root), reference)


def test_sigkill_at_random_moments_then_rerun(tmp_path, reference):
    root = tmp_path / "idx"
    rng = random.Random(20250611)
    for _ in range(4):
        proc = spawn("plan", str(root), "0")
        assert proc.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (root / DB_FILE).exists():
            check_consistent(root)
    run_plan(root)
    assert_same_content(content(root), reference)
    with IndexStore.open(root) as st:  # the rerun left no torn tails
        for name, f in st._snap.files.items():
            assert f.path.stat().st_size == st._snap.committed_rows(name) * f.row_bytes


def test_torn_tail_and_leftovers_are_cleaned_on_writer_open(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        put(st, 1)
        put(st, 2)
        paths = {name: f.path for name, f in st._snap.files.items()}
        sizes = {name: p.stat().st_size for name, p in paths.items()}
    for p in paths.values():  # what a writer killed mid-append leaves
        with open(p, "ab") as f:
            f.write(b"\x7f" * 37)
    (root / "joint.g1.f32").write_bytes(b"half a compaction")
    (root / "joint.g0.f32.tmp-123").write_bytes(b"x")
    check_consistent(root)  # readers ignore bytes past the committed rows
    with IndexStore.open(root, writable=True, fingerprint=FP) as st:
        assert {name: p.stat().st_size for name, p in paths.items()} == sizes
        assert not (root / "joint.g1.f32").exists() and not (root / "joint.g0.f32.tmp-123").exists()
        put(st, 3)
    check_consistent(root)


def test_search_cache_rebuilt_when_missing_or_stale(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        for i in range(6):
            put(st, i)
        assert not list(root.glob("*.faiss"))  # caches are written when the writer closes
        put(st, 6, 1)
        q = np.asarray(make_video(2)[1][1].joint)
        want = st.search_joint(q, 4)
        seq = st.seq
    cache = root / f"joint.s{seq}.faiss"
    assert cache.exists() and (root / f"routing.s{seq}.faiss").exists()
    with IndexStore.open(root) as r:
        assert r.search_joint(q, 4) == want
    cache.unlink()
    with IndexStore.open(root) as r:
        assert r.search_joint(q, 4) == want
    IndexStore.open(root, writable=True).close()  # the writer puts it back
    assert cache.exists()
    # A cache that disagrees with the committed rows (here: a copy of an older commit's) is not used.
    stale = cache.read_bytes()
    with IndexStore.open(root, writable=True) as st:
        put(st, 7)
        put(st, 8)
    assert not cache.exists()  # caches of older commits are removed
    with IndexStore.open(root) as r:
        new_seq, want = r.seq, r.search_joint(q, 4)
    (root / f"joint.s{new_seq}.faiss").write_bytes(stale)
    with IndexStore.open(root) as r:
        assert r.search_joint(q, 4) == want
    (root / f"joint.s{new_seq}.faiss").write_bytes(b"not a faiss index")
    with IndexStore.open(root) as r:
        assert r.search_joint(q, 4) == want


def test_search_returns_exact_neighbours(tmp_path):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        for i in range(10):
            put(st, i)
        put(st, 3, 1)
        st.remove_videos(["/lib/v005.mp4"])
    with IndexStore.open(root) as st:
        keys, joint, routing = [], [], []
        for rec in st.videos():
            keys += [(rec.id, k) for k in range(rec.num_segments)]
            joint.append(st.load_joint(rec.id))
            routing.append(st.load_routing(rec.id))
        joint, routing = np.concatenate(joint), np.concatenate(routing)
        rng = np.random.default_rng(0)
        for _ in range(5):
            q = rng.standard_normal(D_JOINT).astype(np.float32)
            hits = st.search_joint(q, 5)
            want = np.argsort(-(joint @ _unit(q)))[:5]
            assert [(v, s) for v, s, _ in hits] == [keys[j] for j in want]
            np.testing.assert_allclose([s for _, _, s in hits], (joint @ _unit(q))[want], rtol=1e-5)
            qr = rng.standard_normal(D_ROUTE).astype(np.float32)
            want_r = np.argsort(-(routing @ qr))[:3]
            assert [(v, s) for v, s, _ in st.search_routing(qr, 3)] == [keys[j] for j in want_r]
        # A segment's own embedding finds it first; k larger than the library returns everything.
        rec = st.get_video("/lib/v003.mp4")
        assert st.search_joint(st.load_joint(rec.id)[1], 1)[0][:2] == (rec.id, 1)
        assert len(st.search_joint(q, 10_000)) == len(keys)
        with pytest.raises(ValueError, match="dims"):
            st.search_joint(np.ones(3), 2)


def test_merge_of_shards_equals_one_index(tmp_path):
    a, b, single = tmp_path / "a", tmp_path / "b", tmp_path / "single"
    with IndexStore.open(a, writable=True, create=True, fingerprint=FP) as st:
        for i in range(6):
            put(st, i, shard="0/2")
        st.put_failure("/lib/bad.mp4", 1, 1, "hbad", "unreadable", shard="0/2")
    with IndexStore.open(b, writable=True, create=True, fingerprint=FP) as st:
        for i in range(6, 12):
            put(st, i, shard="1/2")
        put(st, 3, 1, shard="1/2")  # indexed later, after the file changed: the newest copy
    with IndexStore.open(single, writable=True, create=True, fingerprint=FP) as st:
        for i in range(12):
            put(st, i, 1 if i == 3 else 0)
        st.put_failure("/lib/bad.mp4", 1, 1, "hbad", "unreadable")
    summary = merge_indexes([a, b], tmp_path / "merged")
    assert (summary.shards, summary.videos, summary.superseded) == (2, 13, 1)
    merged = content(tmp_path / "merged")
    assert_same_content(merged, content(single))
    with IndexStore.open(tmp_path / "merged", fingerprint=FP) as st:
        assert st.get_video("/lib/v007.mp4").shard == "1/2"
        assert summary.segments == st.stats()["segments"]
    # Merging again changes nothing: every copy already there is as new.
    again = merge_indexes([a, b], tmp_path / "merged")
    assert again.videos == 0
    assert_same_content(content(tmp_path / "merged"), merged)
    other = tmp_path / "other"
    IndexStore.open(other, writable=True, create=True, fingerprint=ModelFingerprint.from_parts("x")).close()
    with pytest.raises(FingerprintMismatchError, match="same model"):
        merge_indexes([a, other], tmp_path / "nope")
    with pytest.raises(IndexStoreError, match="into itself"):
        merge_indexes([a], a)


def test_merge_converts_rows_to_the_output_storage_dtypes(tmp_path):
    fp16, int8 = tmp_path / "fp16", tmp_path / "int8"
    with IndexStore.open(fp16, writable=True, create=True, fingerprint=FP) as st:
        put(st, 1)
    dtypes = {"latent_dtype": "int8", "frame_dtype": "fp32"}
    with IndexStore.open(int8, writable=True, create=True, fingerprint=FP, **dtypes) as st:
        put(st, 2)
    merge_indexes([fp16, int8], tmp_path / "out16")  # created with the first shard's dtypes
    IndexStore.open(tmp_path / "out8", writable=True, create=True, fingerprint=FP, **dtypes).close()
    merge_indexes([fp16, int8], tmp_path / "out8")

    def read(root: Path, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with IndexStore.open(root) as st:
            vid = st.get_video(path).id
            frames = np.concatenate([j for _, j in st.load_frames(vid)])
            return np.array(st.load_joint(vid)), np.asarray(st.load_latents(vid), dtype=np.float32), frames

    a1, b2 = read(fp16, "/lib/v001.mp4"), read(int8, "/lib/v002.mp4")
    for got, want in ((read(tmp_path / "out16", "/lib/v001.mp4"), a1), (read(tmp_path / "out8", "/lib/v002.mp4"), b2)):
        for x, y in zip(got, want, strict=True):
            np.testing.assert_array_equal(x, y)  # same dtypes: the stored bytes
    joint, latents, frames = read(tmp_path / "out16", "/lib/v002.mp4")  # int8 latents, fp32 frames -> fp16
    np.testing.assert_array_equal(joint, b2[0])
    np.testing.assert_array_equal(latents, b2[1].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(frames, b2[2].astype(np.float16).astype(np.float32))
    joint, latents, frames = read(tmp_path / "out8", "/lib/v001.mp4")  # fp16 latents and frames -> int8, fp32
    np.testing.assert_array_equal(joint, a1[0])
    np.testing.assert_array_equal(latents, arrays_mod.dequantize_int8(*arrays_mod.quantize_int8(a1[1])))
    np.testing.assert_array_equal(frames, a1[2])


@pytest.mark.parametrize("failure", ["disk_full", "read_only", "fsync", "db_commit"])
def test_write_failures_leave_the_index_intact(tmp_path, monkeypatch, failure):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        put(st, 1)
        put(st, 2)
    before = content(root)
    sizes = {p.name: p.stat().st_size for p in root.glob("*.g0.*")}
    real_pwrite = os.pwrite

    def pwrite_half_then_fail(fd, data, offset):
        real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    def fail(exc):
        def raiser(*args):
            raise exc

        return raiser

    st = IndexStore.open(root, writable=True, fingerprint=FP)
    try:
        if failure == "disk_full":
            monkeypatch.setattr(arrays_mod.os, "pwrite", pwrite_half_then_fail)
            match = "no space left"
        elif failure == "read_only":
            monkeypatch.setattr(arrays_mod.os, "pwrite", fail(OSError(errno.EROFS, "Read-only file system")))
            match = "cannot write to the index"
        elif failure == "fsync":
            monkeypatch.setattr(arrays_mod.os, "fsync", fail(OSError(errno.EIO, "Input/output error")))
            match = "could not write the index"
        else:
            no_space = duckdb.IOException("IO Error: No space left on device")
            monkeypatch.setattr(commit_mod, "insert_videos", fail(no_space))
            match = "no space left"
        with pytest.raises(IndexStoreError, match=match):
            put(st, 2, 1)
        with pytest.raises(IndexStoreError, match=match):
            put(st, 3)
        monkeypatch.undo()
        assert {p.name: p.stat().st_size for p in root.glob("*.g0.*")} == sizes  # appended bytes taken back
        put(st, 4)  # the same writer carries on once the device is fine again
    finally:
        monkeypatch.undo()
        st.close()
    after = content(root)
    assert after.pop("/lib/v004.mp4")
    assert_same_content(after, before)
    check_consistent(root)


def _permissions_enforced(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").touch()
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)


def test_unwritable_directory(tmp_path, monkeypatch):
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        put(st, 1)
    before = content(root)
    files = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    if not _permissions_enforced(tmp_path):  # e.g. root: make the lock file uncreatable instead

        class DeniedLock:
            def __init__(self, *a, **kw):
                pass

            def acquire(self):
                raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(store_mod, "FileLock", DeniedLock)
    else:
        for p in [root, *root.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        with pytest.raises(IndexStoreError, match="cannot write to the index"):
            IndexStore.open(root, writable=True, fingerprint=FP)
        assert_same_content(content(root), before)
    finally:
        for p in [root, *root.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == files


def test_auto_compact_on_close(tmp_path, monkeypatch):
    monkeypatch.setattr(IndexStore, "AUTO_COMPACT_MIN_BYTES", 1)
    root = tmp_path / "idx"
    with IndexStore.open(root, writable=True, create=True, fingerprint=FP) as st:
        put(st, 1)
        put(st, 1, 1)
        put(st, 1, 2)  # two thirds of the rows are now garbage
    with IndexStore.open(root) as st:
        assert st.generation == 1 and st.stats()["garbage_rows"] == 0
        assert_video_matches(st, "/lib/v001.mp4")
    shutil.rmtree(root)


def test_the_store_package_imports_no_other_part_of_salova():
    """salova.store sits below indexing, asking, training and the CLI: it may import only itself and errors."""
    allowed = ("salova.store", "salova.errors")
    found = []
    for path in sorted((TESTS_DIR.parents[1] / "salova" / "store").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "salova" and not n.startswith(allowed)]
    assert found == []
