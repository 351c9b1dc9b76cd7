"""Local model folders: `--encoder models/my-clip` is recorded as an absolute path (so `ask` works from any
directory); a moved folder keeps its index valid when pointed at, and an index whose folder is gone says how to
point at the new place. Indexes written when the digest covered the path as spelled still open."""

from __future__ import annotations

import json
import shutil

import duckdb

from salova.testing.videos import make_video
from tests.cli_helpers import cli


def _fingerprint(index) -> dict:
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        return json.loads(con.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0])
    finally:
        con.close()


def test_a_relative_encoder_is_recorded_absolute_and_can_move(capsys, tmp_path, clip_dir, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(clip_dir, work / "models" / "my-clip")
    video = make_video(work / "a.mp4", [(2.0, "bars"), (2.0, "noise")], fps=15, size=(96, 64))
    monkeypatch.chdir(work)
    run = cli(capsys, "index", "a.mp4", "--index", "idx", "--encoder", "models/my-clip", "--device", "cpu", "--quiet")
    assert run.code == 0, run.err
    assert _fingerprint(work / "idx")["encoder"] == str((work / "models" / "my-clip").resolve())

    monkeypatch.chdir(tmp_path)  # another directory: the recorded absolute path still loads
    asked = cli(capsys, "ask", video.path, "a frame", "--index", work / "idx", "--device", "cpu", "--json")
    assert asked.code == 0, asked.err

    shutil.move(work / "models" / "my-clip", work / "elsewhere")
    gone = cli(capsys, "ask", video.path, "a frame", "--index", work / "idx", "--device", "cpu")
    assert gone.code == 2 and gone.err.count("\n") == 1
    assert gone.err.startswith("salova: error: --encoder needed: the index at ")
    assert "models/my-clip, which is no longer there; if the folder moved, give its new place" in gone.err
    moved = cli(capsys, "ask", video.path, "a frame", "--index", work / "idx", "--device", "cpu", "--json",
                "--encoder", work / "elsewhere")
    assert moved.code == 0, moved.err  # same weights at a new place: the index is still this model's
    again = cli(capsys, "index", video.path, "--index", work / "idx", "--encoder", work / "elsewhere", "--device",
                "cpu", "--json")
    assert again.code == 0 and again.json()["unchanged"] == 1, again.err


def test_an_index_whose_digest_covered_the_relative_spelling_still_opens(capsys, tmp_path, clip_dir, monkeypatch):
    from salova.runtime import load_models
    from salova.store.records import ModelFingerprint
    from salova.store.store import IndexStore

    shutil.copytree(clip_dir, tmp_path / "models" / "my-clip")
    monkeypatch.chdir(tmp_path)
    models = load_models(None, "models/my-clip", "cpu")
    legacy = models._digest("models/my-clip")  # what older salova recorded for this spelling
    assert legacy != models.fingerprint().digest and legacy in models.fingerprint().aliases
    old = ModelFingerprint(str(tmp_path / "models" / "my-clip"), None, legacy)
    IndexStore.open(tmp_path / "idx", writable=True, create=True, fingerprint=old).close()
    video = make_video(tmp_path / "a.mp4", [(2.0, "bars")], fps=15, size=(96, 64))
    run = cli(capsys, "index", video.path, "--index", "idx", "--encoder", "models/my-clip", "--device", "cpu",
              "--quiet")
    assert run.code == 0, run.err
