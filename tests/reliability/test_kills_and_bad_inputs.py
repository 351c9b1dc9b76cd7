"""Reliability of `salova index` and `salova ask`.

- kill -9 at chosen moments (model load, decode, array append, DuckDB commit, cache save) and at random
  ones; after every kill the index opens, `salova ask` answers on the finished videos, and a re-run ends
  with exactly the segments and vectors of an uninterrupted run;
- two writers on one index, the second provably overlapping the first;
- a corpus of bad inputs, some of which must fail with a one-line reason and some must succeed;
- a full disk and a read-only index directory;
- security: no pickle / shell / unsafe torch.load / SQL built from values, and a hostile file name.

Deterministic kill moments come from `PAUSER`: a child that runs the real CLI (`salova_cli.main.main`)
with one library function wrapped so that, at its n-th call, it writes a marker file and waits; the test
kills it there. Heavy variants are marked slow; each has a fast representative in the default suite.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from salova.store.store import IndexStore
from salova.testing.videos import (
    make_audio_only,
    make_corrupt_middle,
    make_random_bytes,
    make_text_file,
    make_truncated,
    make_video,
    make_zero_byte,
)
from tests.cli_helpers import ROOT, cli, cli_env, segments_table

FPS = 15
SIZE = (96, 64)
LOOKS = [(230, 30, 30), (30, 200, 40), (40, 40, 220), "noise", "checker", (240, 240, 40), "bars"]


def library(root: Path, n: int, scenes: int = 3, seconds: float = 2.0):
    """n small videos of `scenes` distinct scenes each, exact cuts."""
    return [
        make_video(root / f"video_{v}.mp4", [(seconds, LOOKS[(v + s) % len(LOOKS)]) for s in range(scenes)],
                   fps=FPS, size=SIZE)
        for v in range(n)
    ]


# ------------------------------------------------------------------------------------------ the pauser
PAUSER = r'''
"""Run `salova ARGS`, pausing at the N-th call of one library function: SALOVA_TEST_PAUSE=POINT:N."""
import os
import sys
import time

point, nth = os.environ["SALOVA_TEST_PAUSE"].split(":")
nth = int(nth)
calls = 0


def pause():
    global calls
    calls += 1
    if calls != nth:
        return
    with open(os.environ["SALOVA_TEST_MARKER"], "w") as f:
        f.write(point)
    release = os.environ.get("SALOVA_TEST_RELEASE")
    while not (release and os.path.exists(release)):
        time.sleep(0.02)


def after(owner, name, static=False):
    orig = getattr(owner, name)

    def wrapped(*args, **kwargs):
        out = orig(*args, **kwargs)
        pause()
        return out

    setattr(owner, name, staticmethod(wrapped) if static else wrapped)


def before(owner, name):
    orig = getattr(owner, name)

    def wrapped(*args, **kwargs):
        pause()
        return orig(*args, **kwargs)

    setattr(owner, name, wrapped)


from salova.store import arrays, commit, search  # noqa: E402
from salova.models import encoder  # noqa: E402

if point == "load":  # the encoder is loaded, the checkpoint's own weights not yet
    after(encoder.VisionTextEncoder, "from_pretrained", static=True)
elif point == "encode":  # a video is being decoded and encoded
    before(encoder.VisionTextEncoder, "encode_frames")
elif point == "appended":  # some array files have the new rows, others not, nothing fsynced
    after(arrays.ArrayFile, "append")
elif point == "commit":  # rows appended and fsynced, the DuckDB transaction open with the rows inserted
    after(commit, "insert_videos")
elif point == "caches":  # every video committed; closing, the FAISS caches being saved
    before(search.SegmentSearch, "save_caches")
else:
    raise SystemExit(f"unknown pause point {point}")

from salova_cli.main import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture()
def pauser(tmp_path):
    path = tmp_path / "pauser.py"
    path.write_text(PAUSER)
    return path


class Child:
    """A `salova` child process; output in files (never a full pipe), optionally paused at a point."""

    def __init__(self, tmp: Path, args, *, pauser: Path | None = None, point: str | None = None,
                 env: dict | None = None, cwd: Path | None = None):
        n = len(list(tmp.glob("child-*.err")))
        self.marker, self.release = tmp / f"child-{n}.paused", tmp / f"child-{n}.release"
        self.out_path, self.err_path = tmp / f"child-{n}.out", tmp / f"child-{n}.err"
        full_env = {**cli_env(), **(env or {})}
        if point is not None:
            assert pauser is not None
            full_env.update(SALOVA_TEST_PAUSE=point, SALOVA_TEST_MARKER=str(self.marker),
                            SALOVA_TEST_RELEASE=str(self.release))
            cmd = [sys.executable, str(pauser), *map(str, args)]
        else:
            cmd = [sys.executable, "-m", "salova_cli", *map(str, args)]
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=cwd)
        self.pid = self.proc.pid

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    def wait_paused(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                pytest.fail(f"child exited ({self.proc.returncode}) before pausing: {self.err[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"child did not reach its pause point in {timeout} s")
            time.sleep(0.02)

    def kill(self) -> bool:
        """SIGKILL; False when it had already exited."""
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return alive

    def wait(self, timeout: float = 300) -> int:
        return self.proc.wait(timeout=timeout)


# ------------------------------------------------------------------------------------------ kill -9
def index_arrays(index: Path) -> dict[str, np.ndarray]:
    """Every stored vector per video path, as plain arrays: joint, routing, latents, frame times / joint."""
    out = {}
    with IndexStore.open(index) as store:
        for v in store.videos("indexed"):
            out[(v.path, "joint")] = np.array(store.load_joint(v.id))
            routing, latents = store.load_routing(v.id), store.load_latents(v.id)
            if routing is not None:
                out[(v.path, "routing")] = np.array(routing)
                out[(v.path, "latents")] = np.array(latents, dtype=np.float32)
            for i, (t, fj) in enumerate(store.load_frames(v.id)):
                out[(v.path, f"frames{i}")] = np.concatenate([t[:, None], fj], axis=1)
    return out


def array_file_sizes(index: Path) -> dict[str, int]:
    pattern = re.compile(r"(joint|routing|latents|latent_scales|frame_times|frame_joint)\.g\d+\.\w+")
    return {p.name: p.stat().st_size for p in index.iterdir() if pattern.fullmatch(p.name)}


def check_after_kill(capsys, index: Path, reference: list[tuple], ask_args: list, mode: str) -> int:
    """The index opens, holds only complete videos equal to the reference's, and `ask` answers on one.

    Returns the number of finished videos (0 when the kill came before the index was created).
    """
    if not (index / "index.duckdb").exists():
        return 0
    with IndexStore.open(index) as store:
        finished = store.videos()
        for v in finished:
            assert v.status == "indexed" and len(store.segments(v.id)) == v.num_segments > 0
    rows = segments_table(index)
    for v in finished:
        assert [r for r in rows if r[0] == v.path] == [r for r in reference if r[0] == v.path]
    if finished:
        video = finished[-1]
        run = cli(capsys, "ask", video.path, "a green checkerboard", "--index", index, "--json", "--device", "cpu",
                  *ask_args)
        assert run.code == 0, run.err
        result = run.json()
        assert result["mode"] == mode and result["video"] == video.path
        assert len(result["moments"]) == min(5, video.num_segments)
        assert all(0 <= m["start_s"] <= m["at_s"] <= m["end_s"] <= video.duration_s + 1e-6 for m in result["moments"])
    return len(finished)


def kill_and_resume(capsys, tmp_path, pauser, videos, model_args, ask_args, mode, plan, rng=None):
    """Index `videos`' folder, killing a child at every step of `plan` (a pause point or "random")."""
    folder = videos[0].path.parent
    reference, index = tmp_path / "reference", tmp_path / "killed"
    args = ["index", folder, "--device", "cpu", "--quiet", *model_args]
    t0 = time.monotonic()
    if "random" in plan:  # as a child too: its wall time bounds the random kill moments
        ref = Child(tmp_path, [*args, "--index", reference])
        assert ref.wait() == 0, ref.err
    else:
        assert cli(capsys, *args, "--index", reference).code == 0
    uninterrupted_s = time.monotonic() - t0
    expected = segments_table(reference)
    assert len({r[0] for r in expected}) == len(videos)

    kills, finished = [], []
    for step in plan:
        if step == "random":
            child = Child(tmp_path, [*args, "--index", index])
            time.sleep(float(rng.uniform(0.3, uninterrupted_s)))
        else:
            child = Child(tmp_path, [*args, "--index", index], pauser=pauser, point=step)
            child.wait_paused()
        if child.kill():
            kills.append(step)
        else:
            assert child.proc.returncode == 0, child.err  # finished before the kill came
        finished.append(check_after_kill(capsys, index, expected, ask_args, mode))
    assert finished == sorted(finished)  # progress is never lost

    final = cli(capsys, *args, "--index", index, "--json")
    assert final.code == 0, final.err
    assert segments_table(index) == expected
    got, want = index_arrays(index), index_arrays(reference)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6, err_msg=str(key))
    # torn tails were cut: the array files hold exactly the committed rows, as the uninterrupted run's do
    assert array_file_sizes(index) == array_file_sizes(reference)
    with IndexStore.open(index) as store:
        assert store.stats()["garbage_rows"] == 0
    return kills, finished


def test_kill9_at_load_decode_commit_then_ask_and_resume_with_latents(capsys, tmp_path, pauser,
                                                                      salova_retrieval_dir):
    """3 kills of a checkpoint-built index (routing tokens + latents): during model load, while a video is
    being decoded, inside a DuckDB commit; `ask` (router) after each; the resumed index equals a clean one."""
    videos = library(tmp_path / "videos", n=4)
    kills, finished = kill_and_resume(
        capsys, tmp_path, pauser, videos, ["--model", salova_retrieval_dir], ["--model", salova_retrieval_dir],
        "router", plan=["load:1", "encode:5", "commit:2"],
    )
    assert kills == ["load:1", "encode:5", "commit:2"]
    # load: nothing yet; encode #5 is in the 2nd video (3 batches per video): 1 done; commit #2 of the third
    # run is the 3rd video's (the first two are unchanged): 2 done
    assert finished == [0, 1, 2]


@pytest.mark.slow
def test_kill9_at_ten_moments_zero_shot(capsys, tmp_path, pauser, clip_dir):
    """10 kills, chosen and random, of an encoder-only index; zero-shot `ask --json` after each."""
    videos = library(tmp_path / "videos", n=8, scenes=4)
    plan = ["load:1", "random", "encode:6", "appended:4", "random", "commit:1", "random", "appended:1",
            "random", "caches:1"]
    kills, finished = kill_and_resume(
        capsys, tmp_path, pauser, videos, ["--encoder", clip_dir], ["--encoder", clip_dir], "zero-shot",
        plan=plan, rng=np.random.default_rng(6),
    )
    assert len(kills) >= 8, kills  # a random kill may come after a short run has already finished
    assert finished[-1] == len(videos)  # the cache-save kill came after every commit


# ------------------------------------------------------------------------------------------ two writers
def test_second_writer_overlapping_fails_with_one_line(capsys, tmp_path, pauser, clip_dir):
    videos = library(tmp_path / "videos", n=2)
    extra = make_video(tmp_path / "more" / "extra.mp4", [(2.0, "noise"), (2.0, (0, 0, 0))], fps=FPS, size=SIZE)
    index = tmp_path / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu", "--quiet"]
    first = Child(tmp_path, ["index", videos[0].path.parent, *common], pauser=pauser, point="encode:2")
    first.wait_paused()  # holds the writer lock, mid-way through its first video, until released
    t0 = time.monotonic()
    second = Child(tmp_path, ["index", extra.path, *common], env={"SALOVA_LOCK_TIMEOUT": "0.5"})
    code = second.wait(timeout=120)
    waited = time.monotonic() - t0
    assert first.proc.poll() is None  # the overlap is real: the first writer was alive all along
    lines = [line for line in second.err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, second.err
    assert lines[0].startswith("salova: error: ") and f"pid {first.pid}" in lines[0] and "Traceback" not in lines[0]
    assert second.out == ""
    first.release.touch()
    assert first.wait() == 0, first.err
    rows = segments_table(index)
    for video in videos:
        assert [r[4] for r in rows if r[0] == str(video.path.resolve())] == [0, *video.cut_frames]
    assert all(r[0] != str(extra.path.resolve()) for r in rows)  # the second wrote nothing
    # and once the first is done, the second goes through
    run = cli(capsys, "index", extra.path, *common, "--json")
    assert run.code == 0 and run.json()["indexed"] == 1
    assert waited < 60


# ------------------------------------------------------------------------------------------ bad inputs
def _vfr_times(n: int) -> list[float]:
    """Irregular frame times: gaps of 1/30, 1/15 or 1/5 s."""
    gaps = np.random.default_rng(0).choice([1 / 30, 1 / 15, 0.2], n - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def test_bad_input_corpus(capsys, tmp_path, clip_dir):
    """Every kind of bad file in one folder: failures get a one-line reason, partial files a one-line
    warning, and the rest (VFR, rotated, odd names, a long static video, a symlink loop) index correctly."""
    lib = tmp_path / "lib"
    good = make_video(lib / "good.mp4", [(2.0, (230, 30, 30)), (2.0, "noise"), (2.0, "checker")], fps=FPS,
                      size=SIZE)
    make_zero_byte(lib / "empty.mp4")
    make_random_bytes(lib / "random.mp4")
    make_text_file(lib / "notes.mp4")
    make_audio_only(lib / "podcast.mp4")
    source = [(3.0, "bars"), (3.0, "noise"), (3.0, (30, 200, 40))]
    src = make_video(tmp_path / "src" / "plain.mp4", source, fps=FPS, size=SIZE)
    src_fast = make_video(tmp_path / "src" / "faststart.mp4", source, fps=FPS, size=SIZE, faststart=True)
    make_truncated(src, lib / "truncated.mp4")  # the index (moov) was at the end: gone
    make_truncated(src_fast, lib / "truncated_faststart.mp4")  # the index first: a prefix decodes
    make_corrupt_middle(src, lib / "corrupt_middle.mp4")
    static = make_video(lib / "static.mp4", [(600.0, "noise")], fps=2, size=(64, 48))  # 10 min, no cut
    times = _vfr_times(90)
    vfr = make_video(lib / "vfr.mp4", [(3.0, (230, 30, 30)), (3.0, "checker")], fps=FPS, size=SIZE,
                     frame_times=times)
    rotated = make_video(lib / "rotated.mp4", [(2.0, (230, 30, 30)), (2.0, "noise")], fps=FPS, size=SIZE,
                         rotation=90)
    odd = make_video(lib / "dir with spaces é" / "naïve vidéo ✓ 名前 (1).mp4", [(2.0, "noise"), (2.0, (0, 0, 0))],
                     fps=FPS, size=SIZE)
    (lib / "loop").mkdir()
    os.symlink("..", lib / "loop" / "up")  # lib/loop/up -> lib: a cycle

    index = tmp_path / "idx"
    run = cli(capsys, "index", lib, "--index", index, "--encoder", clip_dir, "--device", "cpu", "--json",
              "--max-segment", "60")
    assert run.code == 1, run.err  # some failed
    summary = run.json()
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert len(summary["files"]) == len(files) == 12  # every file once, the loop did not repeat any

    reasons = {f["path"]: f["error"] for f in summary["failures"]}
    failed = {Path(p).name for p in reasons}
    assert failed == {"empty.mp4", "random.mp4", "notes.mp4", "podcast.mp4", "truncated.mp4"}
    for path, reason in reasons.items():
        assert reason and "\n" not in reason and Path(path).name in reason
    assert "empty" in files["empty.mp4"]["error"]
    assert "no video stream" in files["podcast.mp4"]["error"]
    assert "not a video" in files["notes.mp4"]["error"] and "not a video" in files["random.mp4"]["error"]

    # decodable only in part: indexed, with a one-line warning, segments within what was decoded
    rows = segments_table(index)
    partial = {Path(w["path"]).name: w["warning"] for w in summary["warnings"]}
    assert set(partial) == {"truncated_faststart.mp4", "corrupt_middle.mp4"}
    for name, warning in partial.items():
        assert "\n" not in warning and name in warning
        mine = [r for r in rows if Path(r[0]).name == name]
        assert files[name]["status"] == "indexed" and files[name]["segments"] == len(mine) > 0
    # truncated: the decoded prefix, cut where the source is
    assert "truncated or corrupt" in partial["truncated_faststart.mp4"]
    mine = [r for r in rows if Path(r[0]).name == "truncated_faststart.mp4"]
    assert 0 < mine[-1][3] < src.duration_s
    assert [r[4] for r in mine] == [0, *src.cut_frames][: len(mine)]
    # corrupt middle: decoding resumes after the damage, to the end; the lost stretch is named
    assert "corrupt data; lost" in partial["corrupt_middle.mp4"]
    mine = [r for r in rows if Path(r[0]).name == "corrupt_middle.mp4"]
    assert mine[-1][3] == pytest.approx(src.duration_s, abs=0.2) and mine[-1][5] == src.num_frames
    assert set(src.cut_frames) <= {r[4] for r in mine}

    def segs(video):
        return [r for r in rows if r[0] == str(Path(video).resolve())]

    assert [r[4] for r in segs(good)] == [0, *good.cut_frames]
    assert [r[4] for r in segs(rotated)] == [0, *rotated.cut_frames] and segs(rotated)[-1][5] == rotated.num_frames
    assert [r[4] for r in segs(odd)] == [0, *odd.cut_frames]

    # no cuts: split into 60-s parts exactly; one 1-FPS frame per second in each
    static_rows = segs(static)
    assert [(r[2], r[3]) for r in static_rows] == [(60.0 * i, 60.0 * (i + 1)) for i in range(10)]
    assert [(r[4], r[5]) for r in static_rows] == [(120 * i, 120 * (i + 1)) for i in range(10)]
    with IndexStore.open(index) as store:
        frames = store.load_frames(store.get_video(str(static.path.resolve())).id)
        assert [len(t) for t, _ in frames] == [60] * 10
        np.testing.assert_allclose(np.concatenate([t for t, _ in frames]), np.arange(600.0), atol=1e-3)

        # variable frame rate: the cut (first frame of scene 2) is at its presentation time, to within one
        # nominal frame; sampled frames are the first at or after each whole second
        vid = store.get_video(str(vfr.path.resolve()))
        vfr_rows = segs(vfr)
        assert len(vfr_rows) == 2 and vfr_rows[0][2] == 0.0 and vfr_rows[0][3] == vfr_rows[1][2]
        assert abs(vfr_rows[1][2] - times[45]) <= 1 / vid.fps
        assert abs(vfr_rows[1][3] - (times[-1] + 1 / vid.fps)) <= 1 / vid.fps
        sampled = np.concatenate([t for t, _ in store.load_frames(vid.id)])
        expected = [next(t for t in times if t >= k - 1e-6) for k in range(math.floor(times[-1]) + 1)]
        np.testing.assert_allclose(sampled, expected, atol=1e-3)

    # the odd path round-trips through `ask`
    asked = cli(capsys, "ask", odd.path, "a black screen", "--index", index, "--encoder", clip_dir, "--device",
                "cpu", "--json")
    assert asked.code == 0, asked.err
    assert asked.json()["video"] == str(odd.path.resolve()) and len(asked.json()["moments"]) == 2


def _peak_rss_of(cmd: list, cwd: Path | None = None) -> tuple[int, int]:
    """(exit code, peak RSS in bytes of the child's own address space: VmHWM read until it exits)."""
    proc = subprocess.Popen([str(c) for c in cmd], env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024)
        except (OSError, AttributeError):
            pass
        time.sleep(0.02)
    assert proc.returncode == 0, proc.stderr.read()
    return proc.returncode, peak


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
def test_two_hour_static_video_is_split_with_bounded_memory(tmp_path, clip_dir):
    """A 2-hour video without a cut (64x48 @ 2 fps keeps writing and decoding it quick): 120 parts of 60 s,
    and the peak RSS within 1.2x of a 10-minute one's."""
    long = make_video(tmp_path / "long" / "static.mp4", [(7200.0, "noise")], fps=2, size=(64, 48))
    short = make_video(tmp_path / "short" / "static.mp4", [(600.0, "noise")], fps=2, size=(64, 48))
    peaks = {}
    for name, video in (("long", long), ("short", short)):
        index = tmp_path / f"idx_{name}"
        _, peaks[name] = _peak_rss_of([sys.executable, "-m", "salova_cli", "index", video.path, "--index", index,
                                       "--encoder", clip_dir, "--device", "cpu", "--quiet"])
        rows = segments_table(index)
        n = round(video.duration_s / 60)
        assert [(r[2], r[3]) for r in rows] == [(60.0 * i, 60.0 * (i + 1)) for i in range(n)]
    assert peaks["long"] <= 1.2 * peaks["short"], peaks


# ------------------------------------------------------------------------------------------ disk full, read-only
def _mount(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)


@pytest.fixture()
def small_fs(tmp_path):
    """A 4 MiB tmpfs (needs root); skipped where it cannot be mounted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        res = _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt)
    except OSError as err:  # no mount command
        pytest.skip(f"cannot mount a small tmpfs to fill up: {err}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave_kib: int) -> Path:
    """Fill the file system until `leave_kib` KiB are free."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


def _snapshot(index: Path) -> tuple:
    return segments_table(index), array_file_sizes(index)


def test_disk_full_is_one_clear_line_and_leaves_the_index_intact(capsys, tmp_path, small_fs, clip_dir):
    videos = library(tmp_path / "videos", n=3)
    index = small_fs / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu"]
    assert cli(capsys, "index", videos[0].path, *common, "--quiet").code == 0
    before = _snapshot(index)
    rest = [v.path for v in videos[1:]]
    # 0 KiB free: the writer cannot even record itself; 4 KiB: its pid file fits, the DuckDB commit does not.
    # Both must fail the same way: exit 1, one line, nothing changed.
    for leave in (0, 4):
        filler = _fill(small_fs, leave)
        run = cli(capsys, "index", *rest, *common, "--json")
        lines = run.err.strip().splitlines()
        assert run.code == 1 and run.out == "" and len(lines) == 1, (leave, run.err)
        assert lines[0].startswith(f"salova: error: no space left on the device holding the index at {index}")
        assert "unchanged" in lines[0]
        assert _snapshot(index) == before  # appended rows were taken back
        filler.unlink()
    with IndexStore.open(index) as store:  # still opens and reads
        assert {v.path for v in store.videos()} == {r[0] for r in before[0]}
    # with space again, a re-run completes to what a roomy disk gives
    assert cli(capsys, "index", *rest, *common, "--quiet").code == 0
    reference = tmp_path / "reference"
    assert cli(capsys, "index", *[v.path for v in videos], "--index", reference, "--encoder", clip_dir,
               "--device", "cpu", "--quiet").code == 0
    assert segments_table(index) == segments_table(reference)


@pytest.fixture()
def read_only_dir(tmp_path):
    """make(path): make a directory read-only, even for root (a read-only bind mount), undone at teardown."""
    mounted = []

    def make(path: Path) -> None:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            if _mount("--bind", path, path).returncode != 0:
                pytest.skip("cannot bind-mount to make a directory read-only for root")
            mounted.append(path)
            res = _mount("-o", "remount,ro,bind", path)
            if res.returncode != 0:
                pytest.skip(f"cannot remount read-only: {res.stderr.strip()}")
        else:
            for p in [path, *path.iterdir()]:
                p.chmod(p.stat().st_mode & ~0o222)
            mounted.append(None)

    yield make
    for path in mounted:
        if path is not None:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_index_dir_is_one_clear_line_and_still_answers(capsys, tmp_path, read_only_dir, clip_dir):
    videos = library(tmp_path / "videos", n=2)
    index = tmp_path / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu"]
    assert cli(capsys, "index", videos[0].path, *common, "--quiet").code == 0
    before = _snapshot(index)
    listing = sorted(p.name for p in index.iterdir())
    read_only_dir(index)
    run = cli(capsys, "index", videos[1].path, *common, "--json")
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert run.code == 1 and len(lines) == 1, run.err
    assert lines[0].startswith("salova: error: ") and "read-only" in lines[0].lower() and "unchanged" in lines[0]
    assert _snapshot(index) == before and sorted(p.name for p in index.iterdir()) == listing
    asked = cli(capsys, "ask", videos[0].path, "a red frame", *common, "--json")  # readers need no write access
    assert asked.code == 0, asked.err
    assert len(asked.json()["moments"]) == 3


# ------------------------------------------------------------------------------------------ security
SOURCE_DIRS = ("salova", "salova_cli", "training")
SQL_METHODS = {"execute", "executemany", "sql", "query"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib"}


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _unsafe(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every risky construct in a module's AST."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [(node.lineno, f"import {n}") for n in names if n.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in PICKLE_MODULES:
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}
        if "shell" in kw and not (isinstance(kw["shell"], ast.Constant) and kw["shell"].value is False):
            found.append((node.lineno, "shell=True"))
        if (owner, name) in {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
                             ("subprocess", "getstatusoutput")}:
            found.append((node.lineno, f"{owner}.{name}"))
        if isinstance(func, ast.Name) and name in {"eval", "exec"}:
            found.append((node.lineno, f"{name}()"))
        if owner == "torch" and name == "load" and not _is_true(kw.get("weights_only")):
            found.append((node.lineno, "torch.load without weights_only=True"))
        if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant) and not kw["allow_pickle"].value):
            found.append((node.lineno, "allow_pickle=True"))
        if isinstance(func, ast.Attribute) and name in SQL_METHODS and node.args:
            found += [(node.lineno, f"SQL built at the call: {why}") for why in _dynamic_sql(node.args[0])]
    return sorted(found)


def _dynamic_sql(arg: ast.AST) -> list[str]:
    """Why a SQL text argument is built from values: an f-string with a non-constant part, % or .format."""
    if isinstance(arg, ast.JoinedStr):
        parts = [v.value for v in arg.values if isinstance(v, ast.FormattedValue)]
        # module constants (UPPER_CASE names) are fixed text: column lists, table names
        return [f"f-string with {ast.unparse(p)}" for p in parts if not (isinstance(p, ast.Name) and p.id.isupper())]
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod | ast.Add):
        return [f"string {type(arg.op).__name__}"]
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "format":
        return ["str.format"]
    return []


def test_source_has_no_pickle_shell_or_sql_built_from_values():
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        problems += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _unsafe(tree)]
    assert problems == []


def test_the_scanner_itself_catches_what_it_should():
    bad = '''
import pickle
import subprocess, os, torch, numpy as np
subprocess.run("ls", shell=True)
os.system("ls")
torch.load("x.pt")
torch.load("x.pt", weights_only=False)
np.load("x.npy", allow_pickle=True)
con.execute(f"SELECT * FROM t WHERE path = '{path}'")
con.execute("SELECT * FROM t WHERE id = %d" % vid)
con.execute("SELECT * FROM t WHERE id = {}".format(vid))
eval("1")
'''
    ok = '''
torch.load("x.pt", weights_only=True)
con.execute(f"SELECT {VIDEO_COLUMNS} FROM videos WHERE path = ?", [path])
subprocess.run(["ls", path], shell=False)
model.eval()
'''
    assert [what for _, what in _unsafe(ast.parse(bad))] == [
        "import pickle", "shell=True", "os.system", "torch.load without weights_only=True",
        "torch.load without weights_only=True", "allow_pickle=True", "SQL built at the call: f-string with path",
        "SQL built at the call: string Mod", "SQL built at the call: str.format", "eval()",
    ]
    assert _unsafe(ast.parse(ok)) == []


def test_hostile_file_name_is_indexed_and_nothing_runs(tmp_path, clip_dir):
    """Quotes, `;`, `$(...)` and backticks in a path are data: the file is indexed and asked about, and
    the commands in its name never run (a canary folder survives, no file is created)."""
    work = tmp_path / "cwd"
    (work / "x").mkdir(parents=True)  # what `rm -rf x` would delete
    name = "a'b\"c; rm -rf x $(touch pwned1) `touch pwned2` | touch pwned3 & .mp4"
    video = make_video(tmp_path / "vids" / name, [(2.0, "noise"), (2.0, (0, 0, 0))], fps=FPS, size=SIZE)
    index = tmp_path / "idx"
    common = ["--index", index, "--encoder", clip_dir, "--device", "cpu"]
    indexed = Child(tmp_path, ["index", video.path.parent, *common, "--json"], cwd=work)
    assert indexed.wait() == 0, indexed.err
    summary = json.loads(indexed.out)
    assert summary["indexed"] == 1 and summary["files"][0]["path"] == str(video.path.resolve())
    asked = Child(tmp_path, ["ask", video.path, "what is shown?", *common, "--json"], cwd=work)
    assert asked.wait() == 0, asked.err
    assert json.loads(asked.out)["video"] == str(video.path.resolve())
    assert (work / "x").is_dir()
    leftovers = {p.name for p in tmp_path.rglob("pwned*")} | {p.name for p in Path.cwd().glob("pwned*")}
    assert leftovers == set()
    assert [r[0] for r in segments_table(index)] == [str(video.path.resolve())] * 2
