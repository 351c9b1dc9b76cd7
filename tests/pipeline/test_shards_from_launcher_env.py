"""Under torchrun / deepspeed, `salova index` takes its shard from ``RANK`` / ``WORLD_SIZE`` (README: "also from
RANK/WORLD_SIZE under torchrun"): rank i of N indexes every N-th file from i into ``INDEX/shards/i-of-N``."""

from __future__ import annotations

from pathlib import Path

import duckdb

from salova.testing.videos import make_video
from tests.cli_helpers import cli
from tests.index_reader import RawIndex


def shard_column(index: Path) -> dict[str, str | None]:
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT path, shard FROM videos").fetchall())
    finally:
        con.close()


def test_rank_and_world_size_pick_the_shard_and_the_shards_merge(capsys, monkeypatch, tmp_path, clip_dir):
    looks = [(230, 30, 30), "noise", (30, 30, 220), "checker"]
    videos = [make_video(tmp_path / "videos" / f"v{i}.mp4", [(1.0, looks[i]), (1.0, looks[i + 1])], fps=15,
                         size=(96, 64)) for i in range(3)]
    paths = [str(v.path.resolve()) for v in videos]
    index = tmp_path / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu", "--json"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank, mine in ((1, [paths[1]]), (0, [paths[0], paths[2]])):
        monkeypatch.setenv("RANK", str(rank))
        run = cli(capsys, "index", tmp_path / "videos", *common)
        assert run.code == 0, run.err
        summary = run.json()
        shard = index / "shards" / f"{rank}-of-2"
        assert summary["shard"] == f"{rank}/2" and summary["index"] == str(shard)
        assert [f["path"] for f in summary["files"]] == mine
        assert RawIndex(shard).paths == mine
        assert shard_column(shard) == {p: f"{rank}/2" for p in mine}
    assert not (index / "index.duckdb").exists()  # nothing went to the main index

    assert cli(capsys, "index", "--merge", "--index", index, "--json").code == 0
    assert RawIndex(index).paths == paths

    # `ask` under a launcher indexes a new video into the main index, not into this rank's shard
    new = make_video(tmp_path / "new.mp4", [(1.0, (240, 240, 40)), (1.0, "bars")], fps=15, size=(96, 64))
    asked = cli(capsys, "ask", new.path, "yellow", "--index", index, "--json", "--device", "cpu")
    assert asked.code == 0, asked.err
    assert RawIndex(index).paths == sorted([*paths, str(new.path.resolve())])
    assert not (index / "shards").exists()


def test_world_size_one_is_not_sharded(capsys, monkeypatch, tmp_path, clip_dir):
    video = make_video(tmp_path / "videos" / "v.mp4", [(1.0, "noise"), (1.0, (0, 0, 0))], fps=15, size=(96, 64))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    run = cli(capsys, "index", video.path, "--index", tmp_path / "idx", "--encoder", clip_dir, "--device", "cpu",
              "--json")
    assert run.code == 0, run.err
    assert run.json()["shard"] is None and RawIndex(tmp_path / "idx").paths == [str(video.path.resolve())]
