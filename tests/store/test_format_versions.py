"""Indexes written by earlier salova versions still open, read, search and answer (tests/data/index_v1).

`index_v1` was written by the store before it kept a `format_version` in `meta`; `expected.json` holds what
that code read back from it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
import transformers

from salova.errors import IndexStoreError
from salova.store.layout import DB_FILE
from salova.store.records import ModelFingerprint
from salova.store.schema import FORMAT_VERSION
from salova.store.store import IndexStore
from tests.cli_helpers import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "index_v1"
EXPECTED = json.loads((DATA / "expected.json").read_text())
INDEXES = ("index", "index_int8")  # fp16 latents; int8 latents with scales


def _sha256(a: np.ndarray | None) -> str | None:
    return None if a is None else hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture()
def old(tmp_path) -> Path:
    """A copy of index_v1 with its indexes unpacked: model/, clip.mp4, index/, index_int8/."""
    shutil.copytree(DATA / "model", tmp_path / "model")
    shutil.copy2(DATA / "clip.mp4", tmp_path / "clip.mp4")
    with tarfile.open(DATA / "indexes.tar.gz") as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return tmp_path


def _meta(root: Path) -> dict[str, str | None]:
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())
    finally:
        con.close()


def _assert_reads_as_written(store: IndexStore, want: dict) -> None:
    stats = store.stats()
    assert {k: stats[k] for k in want["stats"]} == want["stats"]
    (rec,) = store.videos()
    assert [rec.id, rec.size, rec.content_hash, rec.duration_s, rec.fps, rec.num_frames, rec.status,
            rec.num_segments] == want["video"]  # fmt: skip
    assert [[s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame] for s in store.segments(rec.id)] == want["segments"]
    joint = store.load_joint(rec.id)
    frames = store.load_frames(rec.id)
    assert {
        "joint": _sha256(joint),
        "routing": _sha256(store.load_routing(rec.id)),
        "latents": _sha256(store.load_latents(rec.id)),
        "frame_times": [_sha256(t) for t, _ in frames],
        "frame_joint": [_sha256(j) for _, j in frames],
    } == want["sha256"]
    routing = np.array(store.load_routing(rec.id))
    for got, expected in ((store.search_joint(joint[1], 3), want["search_joint"]),
                          (store.search_routing(routing[2], 3), want["search_routing"])):  # fmt: skip
        assert [(v, i) for v, i, _ in got] == [(v, i) for v, i, _ in expected]
        np.testing.assert_allclose([s for *_, s in got], [s for *_, s in expected], rtol=1e-5)


@pytest.mark.parametrize("name", INDEXES)
def test_an_index_without_format_version_reads_as_it_was_written(old, name):
    assert "format_version" not in _meta(old / name)
    with IndexStore.open(old / name) as store:
        _assert_reads_as_written(store, EXPECTED[name])


def test_a_writer_opens_an_old_index_and_keeps_its_data(old):
    root = old / "index"
    files = {p.name: p.read_bytes() for p in root.iterdir() if p.name != DB_FILE}
    with IndexStore.open(root) as reader:
        fingerprint = reader.fingerprint
    with IndexStore.open(root, writable=True, fingerprint=fingerprint):
        pass  # recovery and cache saving find nothing to remove or rewrite
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.name not in (DB_FILE, ".writer")} == files
    with IndexStore.open(root) as store:
        _assert_reads_as_written(store, EXPECTED["index"])


@pytest.mark.skipif(
    transformers.__version__ != EXPECTED["transformers_version"],
    reason="the model fingerprint covers the transformers version, so the fixture's model reads as another model",
)
@pytest.mark.parametrize("name", INDEXES)
def test_an_old_index_built_with_a_format_1_checkpoint_answers_with_one_clear_error(capsys, monkeypatch, old, name):
    """The fixture's checkpoint predates the reference SR-Router layer (checkpoint format 2): its router weights
    cannot score, so ask and search refuse with one line that says to retrain, and the index is left as it was.
    (Its arrays and rows still read back exactly: the tests above.)"""
    con = duckdb.connect(str(old / name / DB_FILE))
    try:
        con.execute("UPDATE videos SET path = ?", [str((old / "clip.mp4").resolve())])
    finally:
        con.close()
    monkeypatch.chdir(old)
    before = _meta(old / name)
    for args in (["ask", "clip.mp4", "the blue scene"], ["search", "a red scene"]):
        run = cli(capsys, *args, "--model", "model", "--index", name, "--json")
        assert run.code == 1
        assert run.out == "" and run.err.count("\n") == 1
        assert "format-1 SALOVA checkpoint" in run.err and "retrain" in run.err
    assert _meta(old / name) == before  # nothing re-indexed or rewritten


def test_a_new_index_records_its_format_version(tmp_path):
    IndexStore.open(tmp_path / "new", writable=True, create=True, fingerprint=ModelFingerprint.from_parts("e")).close()
    meta = _meta(tmp_path / "new")
    assert (meta["format_version"], meta["schema_version"]) == (str(FORMAT_VERSION), "1")


@pytest.mark.parametrize("writable", [False, True])
def test_a_newer_format_version_is_refused_and_left_alone(old, writable):
    root = old / "index"
    con = duckdb.connect(str(root / DB_FILE))
    try:
        con.execute("INSERT INTO meta VALUES ('format_version', ?)", [str(FORMAT_VERSION + 1)])
    finally:
        con.close()
    files = {p.name: p.read_bytes() for p in root.iterdir()}
    with pytest.raises(IndexStoreError, match=rf"format version {FORMAT_VERSION + 1}, newer .* upgrade salova"):
        IndexStore.open(root, writable=writable)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == files
