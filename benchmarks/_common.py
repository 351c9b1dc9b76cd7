"""Shared by the benchmark scripts: synthetic long videos, timed child processes, machine info, docs sections.

Videos are cached under ``benchmarks/_work/`` (git-ignored) and keyed by every parameter that shapes them,
so a second run reuses them.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
DOCS = ROOT / "docs" / "benchmarks.md"
DOCS_INTRO = """# Benchmarks

Measured with the scripts in `benchmarks/`; each section names the machine and the exact command that
produced it. Ratios are measured side by side in one run. Re-run a script to refresh its section.
"""


# ------------------------------------------------------------------------------------------- videos
VIDEO_VERSION = 1  # bump when the renderer changes: cached files get new names


def _texture(rng: np.random.Generator, w: int, h: int, octaves: tuple[tuple[int, float], ...]) -> np.ndarray:
    """Smooth multi-scale noise [h, w, 3] uint8 RGB: `octaves` are (cell size in px, weight)."""
    import cv2

    out = np.zeros((h, w, 3), np.float32)
    for cell, weight in octaves:
        small = rng.random((h // cell + 2, w // cell + 2, 3), dtype=np.float32)
        out += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out * 255, 0, 255).astype(np.uint8)


def _yuv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB [h, w, 3] -> Y [h, w], U [h/2, w/2], V [h/2, w/2] (BT.601, 4:2:0)."""
    import cv2

    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    h, w = rgb.shape[:2]
    u = cv2.resize(yuv[..., 1], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    v = cv2.resize(yuv[..., 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(yuv[..., 0]), u, v


def _bounce(x: float, span: int) -> int:
    """Triangle wave in [0, span], rounded down to an even number (chroma planes are half size)."""
    if span <= 0:
        return 0
    x = x % (2 * span)
    return int(x if x <= span else 2 * span - x) // 2 * 2


def scene_lengths(seconds: float, rng: np.random.Generator) -> list[float]:
    """Scene durations summing to ``seconds``: mostly 2-20 s, one in ten 30-90 s (split by --max-segment)."""
    out: list[float] = []
    left = seconds
    while left > 1e-6:
        d = float(rng.uniform(30, 90)) if rng.random() < 0.1 else float(rng.uniform(2, 20))
        d = round(min(d, left), 3)
        if left - d < 2.0:  # no sliver of a scene at the end
            d = round(left, 3)
        out.append(d)
        left -= d
    return out


@dataclass
class SceneVideo:
    path: Path
    seconds: float
    size: tuple[int, int]
    fps: int
    scenes: int
    encode_s: float  # 0.0 when it came from the cache

    @property
    def frames(self) -> int:
        return round(self.seconds * self.fps)


def scene_video(seconds: float, size: tuple[int, int], fps: int, *, seed: int = 0, crf: int = 23,
                log=print) -> SceneVideo:
    """An H.264 video of scenes of varying length, each two textured layers panning against each other.

    Two layers moving in different directions give the encoder residuals to code, so decoding costs like
    real footage (about 3-4 Mbit/s at 720p30, crf 23) rather than like a still image; a cut changes both
    layers, which AdaptiveDetector finds. Frames are rendered straight into YUV 4:2:0 planes, so writing
    is about as fast as libx264 (preset veryfast) itself. Cached in ``benchmarks/_work``.
    """
    import cv2

    from salova.testing.videos import VideoWriter

    w, h = size
    if w % 2 or h % 4:
        raise ValueError(f"size {size}: width must be even and height a multiple of 4")
    WORK.mkdir(parents=True, exist_ok=True)
    name = f"scenes_v{VIDEO_VERSION}_{w}x{h}_{fps}fps_{seconds:g}s_seed{seed}_crf{crf}"
    path, meta_path = WORK / f"{name}.mp4", WORK / f"{name}.json"
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return SceneVideo(path, seconds, size, fps, meta["scenes"], 0.0)

    rng = np.random.default_rng(seed)
    lengths = scene_lengths(seconds, rng)
    mw, mh = w // 4 // 2 * 2, h // 4 // 2 * 2  # pan margins
    coarse = max(8, w // 12)
    log(f"writing {path.name}: {seconds:g} s, {len(lengths)} scenes ...")
    t0 = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp.mp4")
    yuv = np.empty((h * 3 // 2, w), np.uint8)
    with VideoWriter(tmp, fps, size, quality={"crf": str(crf)}) as writer:
        for length in lengths:
            # layer a: detailed texture; layer b: coarse blobs moving the other way
            a = _yuv_planes(_texture(rng, w + 2 * mw, h + 2 * mh, ((coarse, 0.6), (coarse // 4, 0.3), (4, 0.1))))
            b = _yuv_planes(_texture(rng, w + 2 * mw, h + 2 * mh, ((coarse * 2, 1.0),)))
            va, vb = rng.uniform(-4, 4, 2), rng.uniform(-3, 3, 2)
            start_a, start_b = rng.uniform(0, 4 * max(mw, mh), 2), rng.uniform(0, 4 * max(mw, mh), 2)
            for i in range(round(length * fps)):
                ax, ay = _bounce(start_a[0] + va[0] * i, 2 * mw), _bounce(start_a[1] + va[1] * i, 2 * mh)
                bx, by = _bounce(start_b[0] + vb[0] * i, 2 * mw), _bounce(start_b[1] + vb[1] * i, 2 * mh)
                y = cv2.addWeighted(a[0][ay : ay + h, ax : ax + w], 0.625, b[0][by : by + h, bx : bx + w], 0.375, 0)
                yuv[:h] = y
                for k, plane_row in ((1, h), (2, h + h // 4)):
                    c = cv2.addWeighted(a[k][ay // 2 : ay // 2 + h // 2, ax // 2 : ax // 2 + w // 2], 0.625,
                                        b[k][by // 2 : by // 2 + h // 2, bx // 2 : bx // 2 + w // 2], 0.375, 0)
                    yuv[plane_row : plane_row + h // 4] = c.reshape(h // 4, w)
                writer.write(yuv, format="yuv420p")
    index = writer.frames
    os.replace(tmp, path)
    meta_path.write_text(json.dumps({"scenes": len(lengths), "lengths": lengths, "frames": index}))
    elapsed = time.perf_counter() - t0
    log(f"  {index} frames in {elapsed:.0f} s ({index / elapsed:.0f} frames/s), "
        f"{path.stat().st_size * 8 / seconds / 1e6:.1f} Mbit/s")
    return SceneVideo(path, seconds, size, fps, len(lengths), elapsed)


# ------------------------------------------------------------------------------------------- processes
@dataclass
class ProcResult:
    wall_s: float
    peak_rss: int  # bytes: the child's peak resident set (VmHWM), see run_child
    cpu_s: float  # user + system CPU seconds of the child, all its threads
    code: int
    out: str
    err: str


def _vm_hwm(pid: int) -> int | None:
    """Peak resident set of a live process in bytes (Linux ``VmHWM``), None when unavailable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def run_child(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> ProcResult:
    """Run ``cmd``; wall clock from spawn to exit (process start-up included) and the child's peak RSS.

    Peak RSS: the kernel's high-water mark of the child's own address space (``VmHWM``), read every
    20 ms until it exits; only a peak in its last 20 ms could be missed. ``ru_maxrss`` (``wait4``,
    ``getrusage(RUSAGE_CHILDREN)``) is no good here: it carries the parent's resident size across the
    fork and exec, and this benchmark process holds torch. Where /proc is missing we fall back to it.
    Output goes to temp files so pipes never block the child.
    """
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = t0 + timeout
        hwm = None
        next_poll = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now >= next_poll:
                hwm = _vm_hwm(proc.pid) or hwm
                next_poll = now + 0.02
            if now > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        peak = hwm if hwm is not None else usage.ru_maxrss * 1024
        return ProcResult(wall, peak, usage.ru_utime + usage.ru_stime, proc.returncode,
                          out.read().decode(errors="replace"), err.read().decode(errors="replace"))


class RssSampler:
    """Peak resident set of this process while the ``with`` block runs, sampled every millisecond.

    ``getrusage`` only knows the peak since the process started, which an import may already have set.
    """

    def __init__(self, interval_s: float = 0.001):
        import threading

        import psutil

        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start_rss = self.peak_rss = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.start_rss = self.peak_rss = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        """Peak minus the RSS at entry, in bytes."""
        return self.peak_rss - self.start_rss


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def md_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def duration(seconds: float) -> str:
    """'20 s', '5 min', '1.5 h'."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


def shell_line(cmd: list[str]) -> str:
    """``cmd`` as a shell line, with the repository root and the interpreter written short."""
    text = " ".join(shlex.quote(str(c)) for c in cmd)
    return text.replace(sys.executable, "python").replace(str(ROOT) + "/", "")


# ------------------------------------------------------------------------------------------- machine
def machine_info(device: str) -> dict[str, str]:
    import torch

    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        found = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
        model = found.group(1).strip() if found else model
    except (OSError, subprocess.CalledProcessError):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    info = {
        "cpu": f"{model}, {os.cpu_count()} cores",
        "ram": f"{ram / 2**30:.0f} GiB",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        import av
        import cv2
        import scenedetect

        info["video"] = f"PySceneDetect {scenedetect.__version__}, OpenCV {cv2.__version__}, PyAV {av.__version__}"
    except ImportError:
        pass
    return info


def machine_line(info: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in info.items())


# ------------------------------------------------------------------------------------------- docs
RESULTS = ROOT / "benchmarks" / "results"


def record_run(name: str, report: dict) -> Path:
    """Append one run's raw figures to ``benchmarks/results/NAME.jsonl`` (every run is kept, not the best)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    entry = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), **report}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    return path


def section_markers(name: str, script: str) -> tuple[str, str]:
    """The marker lines of the docs section that ``script`` writes (a test checks every section has its script)."""
    return (f"<!-- {name}:start (written by {script}; edit the script, not this) -->", f"<!-- {name}:end -->")


def write_docs_section(start: str, end: str, body: str) -> Path:
    """Replace the text between the ``start`` / ``end`` marker lines of docs/benchmarks.md (append if absent).

    The file is read right before writing: other scripts own other sections of it.
    """
    text = DOCS.read_text() if DOCS.is_file() else DOCS_INTRO
    block = f"{start}\n{body.strip()}\n{end}\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    tmp = DOCS.with_name(DOCS.name + f".tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, DOCS)
    return DOCS
