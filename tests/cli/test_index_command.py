"""`salova index` end to end through the CLI, on synthetic videos with known cuts."""

from __future__ import annotations

import json
import os
import signal
import time

import duckdb
import numpy as np
import pytest

from salova.store.store import IndexStore
from salova.testing.videos import make_audio_only, make_random_bytes, make_text_file, make_video, make_zero_byte
from tests.cli_helpers import cli, cli_process, segments_table
from tests.index_reader import committed_videos

FPS = 15
LOOKS = [(230, 30, 30), (30, 200, 40), (40, 40, 220), "noise", "checker", (240, 240, 40)]


def library(root, n=3, scenes=3, seconds=2.0):
    """n videos of `scenes` scenes each, distinct looks, exact cuts."""
    root.mkdir(parents=True, exist_ok=True)
    videos = []
    for v in range(n):
        segs = [(seconds, LOOKS[(v + s) % len(LOOKS)]) for s in range(scenes)]
        videos.append(make_video(root / f"video_{v}.mp4", segs, fps=FPS, size=(96, 64)))
    return videos


@pytest.fixture()
def lib(tmp_path):
    return library(tmp_path / "videos")


def index_args(index, clip_dir, *extra):
    return ["index", *extra, "--index", index, "--encoder", clip_dir, "--device", "cpu"]


def test_index_folder_records_cuts_and_json_summary(capsys, tmp_path, lib, clip_dir):
    index = tmp_path / "idx"
    run = cli(capsys, *index_args(index, clip_dir, lib[0].path.parent, "--json"))
    assert run.code == 0, run.err
    summary = run.json()
    assert summary["indexed"] == 3 and summary["failed"] == 0 and summary["failures"] == []
    assert summary["segments"] == 9 and summary["seconds"] > 0
    rows = segments_table(index)
    for video in lib:
        mine = [r for r in rows if r[0] == str(video.path.resolve())]
        starts = [r[4] for r in mine]
        assert starts == [0, *video.cut_frames]  # segment starts are the exact cut frames
        assert mine[-1][5] == video.num_frames
        for r in mine:
            assert r[2] == pytest.approx(r[4] / FPS) and r[3] == pytest.approx(r[5] / FPS)
    # stored per segment: joint embedding, frame timestamps at 1 FPS
    with IndexStore.open(index) as store:
        vid = store.get_video(str(lib[0].path.resolve())).id
        frames = store.load_frames(vid)
        assert [list(np.round(t, 3)) for t, _ in frames] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
        assert store.load_joint(vid).shape[0] == 3
        assert store.load_latents(vid) is None  # no checkpoint: zero-shot vectors only


def test_max_segment_splits_a_scene_without_cuts(capsys, tmp_path, clip_dir):
    video = make_video(tmp_path / "v" / "static.mp4", [(10.0, "bars")], fps=FPS, size=(96, 64))
    index = tmp_path / "idx"
    run = cli(capsys, *index_args(index, clip_dir, video.path, "--max-segment", "3", "--json"))
    assert run.code == 0, run.err
    rows = segments_table(index)
    assert [(r[4], r[5]) for r in rows] == [(0, 38), (38, 75), (75, 112), (112, 150)]  # 4 equal parts <= 3 s
    assert all(r[3] - r[2] <= 3.0 for r in rows)


def test_incremental_rerun_does_no_model_work_and_reindexes_changes(capsys, tmp_path, lib, clip_dir, monkeypatch):
    from salova.models.encoder import VisionTextEncoder

    index = tmp_path / "idx"
    assert cli(capsys, *index_args(index, clip_dir, lib[0].path.parent, "--quiet")).code == 0
    before = segments_table(index)
    calls = []
    real = VisionTextEncoder.encode_frames
    monkeypatch.setattr(VisionTextEncoder, "encode_frames", lambda self, x: calls.append(len(x)) or real(self, x))
    again = cli(capsys, *index_args(index, clip_dir, lib[0].path.parent, "--json")).json()
    assert (again["indexed"], again["unchanged"], again["updated"]) == (0, 3, 0)
    assert calls == [] and segments_table(index) == before
    # touching a file (new mtime, same bytes) is still unchanged; new content is re-indexed
    os.utime(lib[1].path, ns=(time.time_ns(), time.time_ns()))
    make_video(lib[2].path, [(2.0, (0, 0, 0)), (2.0, (255, 255, 255))], fps=FPS, size=(96, 64))
    third = cli(capsys, *index_args(index, clip_dir, lib[0].path.parent, "--json")).json()
    assert (third["unchanged"], third["updated"]) == (2, 1)
    # only the changed file's 1-FPS frames, 2 per still scene, a batch closed at each cut: the second frame of
    # each reuses the first's features (a static scene), so one frame per batch reaches the encoder
    assert calls == [1, 1]
    rows = [r for r in segments_table(index) if r[0].endswith("video_2.mp4")]
    assert [r[4] for r in rows] == [0, 30]


def test_prune_drops_deleted_files(capsys, tmp_path, lib, clip_dir):
    index = tmp_path / "idx"
    cli(capsys, *index_args(index, clip_dir, lib[0].path.parent, "--quiet"))
    lib[0].path.unlink()
    run = cli(capsys, *index_args(index, clip_dir, "--prune", "--json"))
    assert run.code == 0 and run.json()["pruned"] == 1
    assert {r[0] for r in segments_table(index)} == {str(v.path.resolve()) for v in lib[1:]}


def test_bad_inputs_are_reported_and_the_rest_indexed(capsys, tmp_path, lib, clip_dir):
    folder = lib[0].path.parent
    make_zero_byte(folder / "empty.mp4")
    make_random_bytes(folder / "random.mp4")
    make_text_file(folder / "notes.mp4")
    make_audio_only(folder / "podcast.m4v")
    index = tmp_path / "idx"
    run = cli(capsys, *index_args(index, clip_dir, folder, "--json"))
    assert run.code == 1
    summary = run.json()
    assert summary["indexed"] == 3 and summary["failed"] == 4
    reasons = {os.path.basename(f["path"]): f["error"] for f in summary["failures"]}
    assert set(reasons) == {"empty.mp4", "random.mp4", "notes.mp4", "podcast.m4v"}
    for name, reason in reasons.items():
        assert "\n" not in reason and name in reason
    assert "empty" in reasons["empty.mp4"].lower() or "zero" in reasons["empty.mp4"].lower()
    assert "video" in reasons["podcast.m4v"].lower()
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    failed = con.execute("SELECT path, error FROM videos WHERE status = 'failed' ORDER BY path").fetchall()
    con.close()
    assert len(failed) == 4 and all(err for _, err in failed)
    # human output: one line per failure on stderr, exit 1
    human = cli(capsys, *index_args(tmp_path / "idx2", clip_dir, folder))
    assert human.code == 1 and human.err.count("failed:") == 4 and "Traceback" not in human.err


def test_usage_errors_exit_2(capsys, tmp_path, clip_dir):
    run = cli(capsys, *index_args(tmp_path / "idx", clip_dir, tmp_path / "missing"))
    assert run.code == 2 and "missing" in run.err and "Traceback" not in run.err
    assert cli(capsys, "index", "--index", tmp_path / "idx").code == 2
    assert cli(capsys, *index_args(tmp_path / "idx", clip_dir, tmp_path, "--max-segment", "0")).code == 2
    assert cli(capsys, *index_args(tmp_path / "idx", clip_dir, tmp_path, "--shard", "3/2")).code == 2


def test_other_encoder_is_a_clear_error(capsys, tmp_path, lib, clip_dir, siglip_dir):
    index = tmp_path / "idx"
    assert cli(capsys, *index_args(index, clip_dir, lib[0].path, "--quiet")).code == 0
    before = segments_table(index)
    run = cli(capsys, *index_args(index, siglip_dir, lib[1].path))
    assert run.code == 1 and "rebuild" in run.err and "Traceback" not in run.err
    assert segments_table(index) == before


def test_shard_and_merge_equal_a_single_index(capsys, tmp_path, clip_dir):
    videos = library(tmp_path / "videos", n=4, scenes=2)
    folder = videos[0].path.parent
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert cli(capsys, *index_args(single, clip_dir, folder, "--quiet")).code == 0
    for i in range(2):
        assert cli(capsys, *index_args(sharded, clip_dir, folder, "--shard", f"{i}/2", "--quiet")).code == 0
    assert cli(capsys, "index", "--merge", "--index", sharded, "--json").code == 0
    assert segments_table(sharded) == segments_table(single)
    with IndexStore.open(single) as a, IndexStore.open(sharded) as b:
        for path in (str(v.path.resolve()) for v in videos):
            np.testing.assert_array_equal(a.load_joint(a.get_video(path).id), b.load_joint(b.get_video(path).id))
        hits_a = a.search_joint(a.load_joint(a.get_video(path).id)[0], 3)
        hits_b = b.search_joint(b.load_joint(b.get_video(path).id)[0], 3)
        assert [h[2] for h in hits_a] == pytest.approx([h[2] for h in hits_b])


def wait_for_progress(proc, index, more_than: int, timeout: float = 240) -> None:
    """Wait until the running `proc` has committed more than `more_than` videos to `index`."""
    deadline = time.monotonic() + timeout
    while (committed_videos(index) or 0) <= more_than:
        assert proc.poll() is None, f"the run exited ({proc.returncode}) without committing a new video"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


def test_sigkill_then_resume_gives_the_uninterrupted_segments(tmp_path, clip_dir):
    videos = library(tmp_path / "videos", n=10, scenes=3)
    folder = videos[0].path.parent
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    args = ["index", folder, "--encoder", clip_dir, "--device", "cpu", "--quiet"]
    assert cli_process(*args, "--index", reference).wait(timeout=300) == 0
    expected = segments_table(reference)
    rng = np.random.default_rng(0)
    done = 0
    for _ in range(2):
        proc = cli_process(*args, "--index", killed)
        wait_for_progress(proc, killed, done)  # this run has committed a video of its own: it is mid-way
        time.sleep(float(rng.uniform(0.0, 0.1)))  # then a random moment (decode, encode, append or commit)
        assert proc.poll() is None, "the run finished before the kill: nothing was interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with IndexStore.open(killed) as store:  # opens and answers after the kill
            finished = store.videos()
            for v in finished:
                assert v.status == "indexed" and len(store.segments(v.id)) == v.num_segments
        assert done < len(finished) < len(videos)  # progress kept, and the run really was cut short
        rows = segments_table(killed)
        assert rows == [r for r in expected if r[0] in {v.path for v in finished}]  # complete videos only
        done = len(finished)
    assert cli_process(*args, "--index", killed).wait(timeout=300) == 0
    assert segments_table(killed) == expected


def test_second_writer_fails_clearly(capsys, monkeypatch, tmp_path, clip_dir):
    """While a first `salova index` holds the writer lock (frozen there with SIGSTOP, so the overlap is certain),
    a second fails after its lock wait with one line naming the first's pid and writes nothing; the first then
    finishes untouched, and the second goes through afterwards."""
    videos = library(tmp_path / "videos", n=6, scenes=3)
    extra = make_video(tmp_path / "more" / "extra.mp4", [(2.0, "noise"), (2.0, (0, 0, 0))], fps=FPS, size=(96, 64))
    index = tmp_path / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu"]
    first = cli_process("index", videos[0].path.parent, *common, "--quiet")
    deadline = time.monotonic() + 240
    while writer_pid(index) != first.pid:  # recorded right after the lock is taken
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline, "the first writer never took the lock"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        monkeypatch.setenv("SALOVA_LOCK_TIMEOUT", "0.5")
        second = cli(capsys, "index", extra.path, *common, "--json")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    lines = second.err.strip().splitlines()
    assert second.code == 1 and second.out == "" and len(lines) == 1, second.err
    assert lines[0].startswith(f"salova: error: index at {index} is being written by pid {first.pid} on ")
    assert lines[0].endswith("wait for it to finish or use another --index")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rows = segments_table(index)
    assert len(rows) == 18 and {r[0] for r in rows} == {str(v.path.resolve()) for v in videos}
    monkeypatch.delenv("SALOVA_LOCK_TIMEOUT")
    again = cli(capsys, "index", extra.path, *common, "--json")
    assert again.code == 0 and again.json()["indexed"] == 1
    assert len(segments_table(index)) == 20


def writer_pid(index) -> int | None:
    """The pid in the index's `.writer` file (who holds the writer lock), if any."""
    try:
        return int(json.loads((index / ".writer").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_scene_without_a_sampled_frame_merges_into_its_neighbour(capsys, tmp_path, clip_dir, salova_retrieval_dir):
    # 30 fps: cuts at frames 96 and 117; 1-FPS samples at frames 0, 30, 60, 90, 120, ...
    middle = make_video(tmp_path / "v" / "middle.mp4", [(3.2, (230, 30, 30)), (0.7, "noise"), (3.0, (30, 30, 220))],
                        fps=30, size=(96, 64))
    tail = make_video(tmp_path / "v" / "tail.mp4", [(3.2, (230, 30, 30)), (0.7, (30, 30, 220))], fps=30, size=(96, 64))
    assert middle.cut_frames == [96, 117] and tail.cut_frames == [96]
    for model_args in (["--encoder", clip_dir], ["--model", salova_retrieval_dir]):
        index = tmp_path / f"idx{len(model_args[1].name)}"
        run = cli(capsys, "index", middle.path, tail.path, "--index", index, *model_args, "--json")
        assert run.code == 0 and run.json()["failed"] == 0, run.out
        rows = segments_table(index)
        assert [(r[4], r[5]) for r in rows if r[0].endswith("middle.mp4")] == [(0, 96), (96, 207)]
        assert [(r[4], r[5]) for r in rows if r[0].endswith("tail.mp4")] == [(0, 117)]
