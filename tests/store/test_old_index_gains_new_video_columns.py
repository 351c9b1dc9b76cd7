"""An index written before `videos.warning/gaps/settings` existed reads them as NULL, and its next writer
adds them in place without touching anything else (tests/data/index_v1)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import duckdb
import pytest

from salova.store.layout import DB_FILE
from salova.store.schema import ADD_VIDEO_COLUMNS
from salova.store.store import IndexStore

DATA = Path(__file__).resolve().parents[1] / "data" / "index_v1"


@pytest.fixture()
def old_index(tmp_path) -> Path:
    with tarfile.open(DATA / "indexes.tar.gz") as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    shutil.rmtree(tmp_path / "index_int8")
    return tmp_path / "index"


def _columns(root: Path) -> list[str]:
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        return [d[0] for d in con.execute("SELECT * FROM videos LIMIT 0").description]
    finally:
        con.close()


def test_a_reader_sees_the_new_columns_as_null_and_changes_nothing(old_index):
    before = (old_index / DB_FILE).read_bytes()
    with IndexStore.open(old_index) as store:
        (rec,) = store.videos()
        assert (rec.warning, rec.gaps, rec.settings) == (None, None, None)
    assert not set(ADD_VIDEO_COLUMNS) & set(_columns(old_index))
    assert (old_index / DB_FILE).read_bytes() == before


def test_the_next_writer_adds_the_columns_and_keeps_the_rows(old_index):
    with IndexStore.open(old_index) as reader:
        fingerprint, (before,) = reader.fingerprint, reader.videos()
        seq = reader.seq
    with IndexStore.open(old_index, writable=True, fingerprint=fingerprint) as store:
        (rec,) = store.videos()
        assert rec == before
        store.put_failure("/elsewhere/x.mp4", 1, 1, "h", "x.mp4: broken", settings='{"fps": 1.0}')
    assert set(ADD_VIDEO_COLUMNS) <= set(_columns(old_index))
    with IndexStore.open(old_index) as store:
        assert store.get_video(before.path) == before
        assert store.get_video("/elsewhere/x.mp4").settings == '{"fps": 1.0}'
        assert store.seq == seq + 1
