"""A second `salova index` on an index another process is writing waits (``SALOVA_LOCK_TIMEOUT``, default
10 s), then fails naming the holder; if the holder finishes within the wait, the second goes through.

The holder is a real writer in another process: salova's own store, opened for writing and held until the
test closes its stdin.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from salova.testing.videos import make_video
from tests.cli_helpers import ROOT, cli, cli_env, segments_table

HOLDER = """
import sys
from pathlib import Path
from tests.index_reader import IndexStore

store = IndexStore.open(Path(sys.argv[1]), writable=True)
print("locked", flush=True)
sys.stdin.read()  # held until the test closes stdin
store.close()
"""


class Holder:
    def __init__(self, index):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(index)], env=cli_env(), cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", self.proc.stderr.read()

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr.read()


@pytest.fixture()
def index_and_videos(capsys, tmp_path, clip_dir):
    first = make_video(tmp_path / "v" / "first.mp4", [(1.0, "noise"), (1.0, (230, 30, 30))], fps=15, size=(96, 64))
    second = make_video(tmp_path / "v" / "second.mp4", [(1.0, "checker"), (1.0, (30, 30, 230))], fps=15,
                        size=(96, 64))
    index = tmp_path / "idx"
    assert cli(capsys, "index", first.path, "--index", index, "--encoder", clip_dir, "--device", "cpu",
               "--quiet").code == 0
    return index, second


def test_second_writer_waits_the_default_10_s_then_names_the_holder(capsys, monkeypatch, index_and_videos,
                                                                   clip_dir):
    index, video = index_and_videos
    before = segments_table(index)
    monkeypatch.delenv("SALOVA_LOCK_TIMEOUT", raising=False)
    holder = Holder(index)
    try:
        t0 = time.monotonic()
        run = cli(capsys, "index", video.path, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--json")
        waited = time.monotonic() - t0
    finally:
        holder.release()
    assert 9.0 <= waited <= 20.0, waited  # model loading (about a second) plus the 10-s lock wait
    lines = run.err.strip().splitlines()
    assert run.code == 1 and run.out == "" and len(lines) == 1, run.err
    assert lines[0].startswith("salova: error: ") and f"pid {holder.proc.pid}" in lines[0]
    assert segments_table(index) == before  # the second wrote nothing


def test_second_writer_goes_through_when_the_holder_finishes_within_the_wait(capsys, monkeypatch, index_and_videos,
                                                                            clip_dir):
    import threading

    index, video = index_and_videos
    monkeypatch.delenv("SALOVA_LOCK_TIMEOUT", raising=False)
    holder = Holder(index)
    timer = threading.Timer(3.0, holder.release)
    timer.start()
    try:
        t0 = time.monotonic()
        run = cli(capsys, "index", video.path, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--json")
        waited = time.monotonic() - t0
    finally:
        timer.join()
    assert run.code == 0, run.err
    assert run.json()["indexed"] == 1 and waited >= 3.0
    assert str(video.path.resolve()) in {r[0] for r in segments_table(index)}
