"""Indexing benchmarks (issue 6): speed against the scene detector alone, memory in video length, index size,
int8 latents, the ST-Connector's cost with dynamic token drop, and encoder throughput.

    python benchmarks/bench_index.py --quick            # small sizes, about 2 minutes, prints the tables
    python benchmarks/bench_index.py                    # full sizes, about 20 minutes on 2 CPU cores;
                                                        # writes its section of docs/benchmarks.md
    python benchmarks/bench_index.py --only speed,connector --device cuda

Sections (``--only``):
  speed      `salova index FILE` (tiny encoder) vs `scenedetect -i FILE detect-adaptive` on a 10-minute
             720p30 video, both as child processes timed from spawn to exit (start-up included for both),
             alternating, medians; plus each tool's start-up alone (a 1-second clip) and where salova's
             time goes (scanner pass, encoder pre-processing, encoder forward). Checks that the index's
             segments are scenedetect's scenes on that video (`... detect-adaptive list-scenes`, one more
             untimed run), split at --max-segment; the script fails if they are not.
  memory     peak RSS of `salova index` on a 60-minute vs a 5-minute video (same scene rate), encoder
             only, a tiny trained checkpoint, and a tiny checkpoint with paper-size latents (256 x 1024).
  size       index bytes per hour of video from those runs, fp16 and int8 latents, and the paper's sizes.
  int8       int8 vs fp16 latents on the same video: router scores, latents, FocusFast visual tokens, and
             the LLM's next-token logits.
  connector  STConnector (paper dims) forward+backward, token drop 0.7 vs 0, time and peak memory.
  encoder    encoder frames/s on 720p frames (pre-processing included) on the chosen device.

Videos are written with PyAV and cached in benchmarks/_work (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks._common import (
    WORK,
    ProcResult,
    RssSampler,
    SceneVideo,
    child_env,
    duration,
    machine_info,
    machine_line,
    md_table,
    median,
    mib,
    record_run,
    run_child,
    scene_video,
    section_markers,
    shell_line,
    write_docs_section,
)

SECTIONS = ("speed", "memory", "size", "int8", "connector", "encoder")
DOC_START, DOC_END = section_markers("bench_index", "benchmarks/bench_index.py")
SPEED_TARGET = 1.3
MEMORY_TARGET = 1.2

# The paper's sizes (CLIP-ViT-L/14-336 + ST-Connector) for the size estimate.
PAPER = {"latents": 256, "d_lat": 1024, "d_route": 1024, "d_joint": 768}
SCENEWALK_SEGMENT_S = 33.11  # SceneWalk: 1.29 M segments from PySceneDetect AdaptiveDetector, 33.11 s average


@dataclass
class Sizes:
    """Everything the script scales with --quick."""

    speed_video: tuple[float, tuple[int, int], int]  # seconds, (W, H), fps
    breakdown_video: tuple[float, tuple[int, int], int]
    memory_short: tuple[float, tuple[int, int], int]
    memory_long: tuple[float, tuple[int, int], int]
    speed_runs: int
    startup_runs: int
    warm_up: bool  # one untimed run of each tool before timing
    memory_configs: tuple[str, ...]
    connector_frames: int
    connector_reps: int
    encoder_batches: int


FULL = Sizes(
    speed_video=(600, (1280, 720), 30),
    breakdown_video=(60, (1280, 720), 30),
    # 10 fps instead of 30: memory is about sampled frames (1 FPS) and segments, which do not depend on the
    # native rate; a third of the frames makes writing and decoding an hour of video three times quicker.
    memory_short=(300, (320, 240), 10),
    memory_long=(3600, (320, 240), 10),
    speed_runs=3,
    startup_runs=3,
    warm_up=True,
    memory_configs=("encoder", "tiny", "wide"),
    connector_frames=120,
    connector_reps=5,
    encoder_batches=8,
)
QUICK = Sizes(
    speed_video=(20, (640, 360), 30),
    breakdown_video=(20, (640, 360), 30),  # the speed video itself
    memory_short=(20, (160, 120), 10),
    memory_long=(120, (160, 120), 10),
    speed_runs=1,
    startup_runs=1,
    warm_up=False,
    memory_configs=("encoder", "wide"),
    connector_frames=16,
    connector_reps=2,
    encoder_batches=2,
)


@dataclass
class Models:
    """Tiny random checkpoints written for this run (no download)."""

    encoder: Path  # CLIP, width 32
    salova: Path  # trained-checkpoint path: 8 latents x 32
    wide_encoder: Path  # CLIP, width 1024 (the paper's connector width)
    wide_salova: Path  # 256 latents x 1024 (paper-size latents), with a tiny LLM for FocusFast


@dataclass
class Report:
    """Markdown pieces and headline numbers collected by the sections."""

    parts: list[str] = field(default_factory=list)
    headline: dict[str, str] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)  # every measured figure, kept in benchmarks/results
    memory_indexes: dict[tuple[str, str], tuple[Path, SceneVideo]] = field(default_factory=dict)

    def add(self, text: str) -> None:
        self.parts.append(text.strip("\n"))
        print("\n" + text.strip("\n") + "\n", flush=True)


def log(msg: str) -> None:
    print(f"[bench_index] {msg}", file=sys.stderr, flush=True)


def salova_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "salova_cli", *map(str, args)]


def run_ok(cmd: list[str], what: str) -> ProcResult:
    res = run_child(cmd, env=child_env())
    if res.code != 0:
        raise SystemExit(f"{what} failed (exit {res.code}): {shell_line(cmd)}\n{res.err[-3000:]}")
    return res


def load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ------------------------------------------------------------------------------------------------ models
def make_models(root: Path) -> Models:
    from salova.tiny import make_tiny_encoder, make_tiny_llm, make_tiny_salova

    log("writing tiny random checkpoints ...")
    enc = make_tiny_encoder(root / "clip", "clip")
    wide = make_tiny_encoder(root / "clip_wide", "clip", width=1024)
    llm = make_tiny_llm(root / "llm", "llama")
    return Models(
        encoder=enc,
        salova=make_tiny_salova(root / "salova", enc),
        wide_encoder=wide,
        wide_salova=make_tiny_salova(root / "salova_wide", wide, llm, num_latents=256, dim_head=64),
    )


# ------------------------------------------------------------------------------------------------ cuts
@dataclass
class CutCheck:
    """salova's segments of a video against `scenedetect -i FILE detect-adaptive list-scenes`."""

    cuts: list[int]  # scenedetect's cut frames (first frame of every scene after the first), 0-based
    expected: list[tuple[int, int]]  # scenedetect's scenes split at max_segment_s: [start, end) frames
    segments: list[tuple[int, int]]  # what the index holds for the video

    @property
    def equal(self) -> bool:
        return self.segments == self.expected

    def describe(self) -> str:
        if self.equal:
            return (f"identical: scenedetect's {len(self.cuts)} cuts, {len(self.expected)} segments after splitting "
                    "long scenes")
        first = next((i for i, (a, b) in enumerate(zip(self.segments, self.expected, strict=False)) if a != b),
                     min(len(self.segments), len(self.expected)))
        return (f"DIFFERENT: index {len(self.segments)} segments, scenedetect {len(self.expected)} (after splitting); "
                f"first difference at segment {first}: index {self.segments[first:first + 2]} vs scenedetect "
                f"{self.expected[first:first + 2]}")


def scenedetect_scenes(path: Path, out_dir: Path) -> list[tuple[int, int]]:
    """Scenes [start, end) in 0-based frames from the real CLI: `scenedetect -i FILE detect-adaptive list-scenes`."""
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "scenedetect", "-q", "-i", str(path), "-o", str(out_dir), "detect-adaptive",
           "list-scenes", "-f", "scenes.csv"]
    run_ok(cmd, "scenedetect list-scenes")
    rows = list(csv.reader((out_dir / "scenes.csv").read_text().splitlines()))
    header = rows[1]  # row 0 is the cut list
    start, end = header.index("Start Frame"), header.index("End Frame")
    # 1-based in the CSV, end inclusive: 0-based [start - 1, end)
    return [(int(r[start]) - 1, int(r[end])) for r in rows[2:]]


def check_cuts(video: Path, index: Path, out_dir: Path, max_segment_s: float = 60.0) -> CutCheck:
    """Compare the index's segments of ``video`` with scenedetect's scenes split by salova's documented rule."""
    import duckdb

    from salova.video.segments import split_scene

    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        fps, = con.execute("SELECT fps FROM videos WHERE path = ?", [str(video.resolve())]).fetchone()
        segments = con.execute(
            "SELECT s.start_frame, s.end_frame FROM segments s JOIN videos v ON v.id = s.video_id WHERE v.path = ? "
            "ORDER BY s.idx", [str(video.resolve())]).fetchall()
    finally:
        con.close()
    scenes = scenedetect_scenes(video, out_dir)
    expected = [part for a, b in scenes for part in split_scene(a, b, fps, max_segment_s)]
    return CutCheck([a for a, _ in scenes[1:]], expected, [(int(a), int(b)) for a, b in segments])


# ------------------------------------------------------------------------------------------------ speed
def bench_speed(sizes: Sizes, models: Models, device: str, tmp: Path, report: Report) -> None:
    seconds, size, fps = sizes.speed_video
    video = scene_video(seconds, size, fps, log=log)
    clip = scene_video(1, size, fps, seed=1, log=log)

    def sd(path: Path) -> list[str]:
        return [sys.executable, "-m", "scenedetect", "-i", str(path), "detect-adaptive"]

    runs = 0
    video_index: Path | None = None

    def sv(path: Path) -> list[str]:
        nonlocal runs, video_index
        runs += 1
        index = tmp / f"speed_index_{runs}"  # a fresh index each run: the whole first-time pass
        if path == video.path:
            video_index = index
        return salova_cmd("index", path, "--index", index, "--encoder", models.encoder, "--device", device,
                          "--quiet")

    if sizes.warm_up:  # the page cache and Python's bytecode caches, for both tools; not timed
        run_ok(sd(clip.path), "scenedetect")
        run_ok(sv(clip.path), "salova index")
    startup = {"scenedetect": [], "salova": []}
    full = {"scenedetect": [], "salova": []}
    cpu = {"scenedetect": [], "salova": []}
    rss = {"scenedetect": [], "salova": []}
    loads = [load_avg()]
    for r in range(max(sizes.startup_runs, sizes.speed_runs)):
        order = ("scenedetect", "salova") if r % 2 == 0 else ("salova", "scenedetect")
        for tool in order:
            make = sd if tool == "scenedetect" else sv
            if r < sizes.startup_runs:
                startup[tool].append(run_ok(make(clip.path), tool).wall_s)
            if r < sizes.speed_runs:
                res = run_ok(make(video.path), tool)
                full[tool].append(res.wall_s)
                cpu[tool].append(res.cpu_s)
                rss[tool].append(res.peak_rss)
                log(f"  run {r + 1}: {tool} {res.wall_s:.1f} s (load {load_avg()})")
        loads.append(load_avg())
    assert video_index is not None
    cuts = check_cuts(video.path, video_index, tmp / "speed_scenes")
    log(f"  cuts: {cuts.describe()}")
    report.headline["cuts vs scenedetect list-scenes (speed video)"] = "identical" if cuts.equal else "DIFFERENT"
    m = {t: median(v) for t, v in full.items()}
    s = {t: median(v) for t, v in startup.items()}
    ratio_net = (m["salova"] - s["salova"]) / max(m["scenedetect"] - s["scenedetect"], 1e-9)
    paired = [a / b for a, b in zip(full["salova"], full["scenedetect"], strict=True)]  # same round, back to back
    paired_cpu = [a / b for a, b in zip(cpu["salova"], cpu["scenedetect"], strict=True)]
    ratio, cpu_ratio = median(paired), median(paired_cpu)  # every round counts: no best-of
    report.headline["speed salova / scenedetect (wall, median of paired rounds)"] = f"{ratio:.2f}x"
    report.headline["speed salova / scenedetect (CPU time, median of paired rounds)"] = f"{cpu_ratio:.2f}x"
    report.raw["speed"] = {"wall_s": full, "cpu_s": cpu, "startup_s": startup, "peak_rss": rss,
                           "paired_wall": paired, "paired_cpu": paired_cpu, "loads": loads}
    verdict = "met" if ratio <= SPEED_TARGET else "missed"
    warm = ", after one untimed warm-up of each" if sizes.warm_up else ""
    frames = video.frames
    table = md_table(["", "median wall", "runs (s)", "frames/s", "median CPU (user+sys)", "peak RSS"], [
        [f"`{label}`", f"{m[tool]:.1f} s", ", ".join(f"{x:.1f}" for x in full[tool]), f"{frames / m[tool]:.0f}",
         f"{median(cpu[tool]):.1f} s", mib(median(rss[tool]))]
        for tool, label in (("scenedetect", "scenedetect -i FILE detect-adaptive"), ("salova", "salova index FILE"))
    ] + [["start-up alone (1-s clip): scenedetect / salova", f"{s['scenedetect']:.1f} s / {s['salova']:.1f} s",
          "", "", "", ""]])
    report.add(f"""
### Indexing speed: `salova index` vs the scene detector alone

Video: {duration(seconds)}, {size[0]}x{size[1]} @ {fps} fps H.264 (libx264 veryfast, crf 23,
{video.path.stat().st_size * 8 / seconds / 1e6:.1f} Mbit/s), {video.scenes} scenes of 2-90 s, two textured
layers panning against each other. Both tools run as child processes, timed from spawn to exit, so
**process start-up is included for both**; {sizes.speed_runs} run(s) each, alternating which goes first{warm}.
salova writes a fresh index every run (tiny random CLIP encoder, 1-FPS sampling, zero-shot vectors).
Load average (1/5/15 min) before and after each round: {" | ".join(loads)}.

{table}

**Ratio salova / scenedetect, median of the paired per-round ratios of wall time: {ratio:.2f}x** (target <=
{SPEED_TARGET}x: {verdict}). Every round (the two runs back to back): {", ".join(f"{r:.2f}x" for r in paired)}.
CPU time (user + sys), which other load on the machine disturbs less, per round:
{", ".join(f"{r:.2f}x" for r in paired_cpu)}; median **{cpu_ratio:.2f}x**. Without each tool's start-up (median
wall minus the 1-s clip's): {ratio_net:.2f}x. Raw figures of every run: `benchmarks/results/index.jsonl`.

Scene cuts on this video, the last salova index against `scenedetect -i FILE detect-adaptive list-scenes`
(scenes longer than `--max-segment`, 60 s, split by salova's rule): {cuts.describe()}.
""")
    if not cuts.equal:
        raise SystemExit(f"salova's segments differ from scenedetect's scenes on {video.path.name}: {cuts.describe()}")
    bench_breakdown(sizes, models, device, s, report)


def bench_breakdown(sizes: Sizes, models: Models, device: str, startup: dict, report: Report) -> None:
    """Where salova's time goes, measured in this process stage by stage on a shorter clip."""
    import torch

    from salova.models.encoder import VisionTextEncoder
    from salova.video import SampledFrame, VideoScanner

    seconds, size, fps = sizes.breakdown_video
    # Full mode: a separate 1-minute clip (the 10-minute one would take as long again); quick: the speed clip.
    video = scene_video(seconds, size, fps, seed=0 if (seconds, size, fps) == sizes.speed_video else 7, log=log)
    t0 = time.perf_counter()
    sampled = []
    for event in VideoScanner(video.path):
        if isinstance(event, SampledFrame):
            sampled.append(event.rgb)
    scan_s = time.perf_counter() - t0
    enc = VisionTextEncoder.from_pretrained(models.encoder, device=device)
    batches = [np.stack(sampled[i : i + 16]) for i in range(0, len(sampled), 16)]
    with torch.inference_mode():
        enc.encode_frames(batches[0])  # warm-up
        t0 = time.perf_counter()
        pixels = [enc.pixel_values(b) for b in batches]
        _sync(device)
        pre_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for pv in pixels:
            enc.model.vision_model(pixel_values=pv, output_hidden_states=True)
        _sync(device)
        fwd_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in batches:
            enc.encode_frames(b)
        _sync(device)
        enc_s = time.perf_counter() - t0
    n = len(sampled)
    per_min = 60.0 / seconds
    table = md_table(["stage", "time per minute of video", "note"], [
        ["decode + AdaptiveDetector + 1-FPS sampling (`VideoScanner`)", f"{scan_s * per_min:.2f} s",
         "what `scenedetect` does too"],
        ["encoder pre-processing (`pixel_values`: full-size uint8 -> float32, antialiased bicubic resize)",
         f"{pre_s * per_min:.2f} s", f"{1000 * pre_s / n:.1f} ms per sampled frame"],
        ["encoder forward (tiny CLIP, 56 px)", f"{fwd_s * per_min:.2f} s",
         f"{1000 * fwd_s / n:.1f} ms per sampled frame"],
        ["`encode_frames` as the indexer calls it (both of the above)", f"{enc_s * per_min:.2f} s",
         f"{1000 * enc_s / n:.1f} ms per sampled frame"],
        ["process start-up + model load (once per run)",
         f"{startup['salova'] - startup['scenedetect']:.1f} s more than scenedetect's", "imports torch, transformers"],
    ])
    report.add(f"""
Where salova's time goes (measured stage by stage in one process on a {seconds:g}-s clip of the same kind,
{video.frames} frames, {n} sampled at 1 FPS; per minute of video):

{table}
""")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ memory
MEMORY_CONFIGS = {  # key -> (label, model option)
    "encoder": ("encoder only (zero-shot)", "--encoder"),
    "tiny": ("tiny checkpoint (8 latents x 32)", "--model"),
    "wide": ("tiny checkpoint, paper-size latents (256 x 1024)", "--model"),
}


def _config_model(key: str, models: Models) -> Path:
    return {"encoder": models.encoder, "tiny": models.salova, "wide": models.wide_salova}[key]


def bench_memory(sizes: Sizes, models: Models, device: str, tmp: Path, report: Report) -> None:
    short = scene_video(*sizes.memory_short[:2], sizes.memory_short[2], seed=2, log=log)
    long = scene_video(*sizes.memory_long[:2], sizes.memory_long[2], seed=2, log=log)
    rows, segments = [], {}
    for key in sizes.memory_configs:
        name, option = MEMORY_CONFIGS[key]
        peaks = {}
        for label, video in (("short", short), ("long", long)):
            index = tmp / f"mem_{key}_{label}"
            cmd = salova_cmd("index", video.path, "--index", index, "--device", device, "--json",
                             option, _config_model(key, models))
            res = run_ok(cmd, "salova index")
            peaks[label] = (res.peak_rss, res.wall_s, json.loads(res.out)["segments"])
            report.memory_indexes[(key, label)] = (index, video)
            log(f"  {name}, {duration(video.seconds)}: peak RSS {mib(res.peak_rss)}, {res.wall_s:.0f} s")
        segments[key] = (peaks["short"][2], peaks["long"][2])
        ratio = peaks["long"][0] / peaks["short"][0]
        report.headline[f"memory {duration(long.seconds)} / {duration(short.seconds)}: {name}"] = f"{ratio:.2f}x"
        rows.append(
            f"| {name} | {mib(peaks['short'][0])} ({peaks['short'][2]} seg, {peaks['short'][1]:.0f} s) "
            f"| {mib(peaks['long'][0])} ({peaks['long'][2]} seg, {peaks['long'][1]:.0f} s) "
            f"| {mib(peaks['long'][0] - peaks['short'][0])} | **{ratio:.2f}x** |"
        )
    (ss, (sw, sh), sf), (ls, _, _) = sizes.memory_short, sizes.memory_long
    notes = "not measurable for the encoder-only and 8 x 32 runs (a few hundred bytes per segment)"
    if "wide" in segments:
        per_seg = 256 * 1024 * 2  # fp16 latents of one segment
        notes = (f"with paper-size latents, 512 KiB per segment, {mib(segments['wide'][0] * per_seg)} for the "
                 f"{duration(ss)} video's {segments['wide'][0]} segments and {mib(segments['wide'][1] * per_seg)} "
                 f"for the {duration(ls)} video's {segments['wide'][1]}")
    report.add(f"""
### Memory: peak RSS, {duration(ls)} vs {duration(ss)} of video

Videos: the same generator and scene-length distribution (same cuts per minute), {sw}x{sh} @ {sf} fps.
Low resolution and {sf} fps keep writing and decoding an hour quick; what could grow with video length is
per sampled frame (1 FPS, whatever the native rate) and per segment, so this measures the same thing as
30 fps would. Peak RSS of the `salova index` child (its `VmHWM`, read until it exits), fresh index each run; the
trained-checkpoint runs compute routing tokens and connector latents for every segment. Target: long /
short <= {MEMORY_TARGET}x. A video is committed in one step when its scan ends: the indexer keeps its segment
vectors and spills the latents to a temporary file until then, and the commit reads the latents back one
segment at a time (the file's pages count in the RSS), so what can still grow is per segment of the longest
video: {notes}.

| configuration | {duration(ss)} | {duration(ls)} | difference | ratio |
|---|---|---|---|---|
{chr(10).join(rows)}
""")


def wide_indexes(sizes: Sizes, models: Models, device: str, tmp: Path, report: Report) -> tuple[Path, Path, SceneVideo]:
    """fp16 and int8 indexes of the long memory video with the paper-size-latent checkpoint (made once)."""
    if ("wide", "long") not in report.memory_indexes:
        video = scene_video(*sizes.memory_long[:2], sizes.memory_long[2], seed=2, log=log)
        index = tmp / "mem_wide_long"
        run_ok(salova_cmd("index", video.path, "--index", index, "--device", device, "--quiet",
                          "--model", models.wide_salova), "salova index")
        report.memory_indexes[("wide", "long")] = (index, video)
    index, video = report.memory_indexes[("wide", "long")]
    int8_index = tmp / "wide_long_int8"
    if not int8_index.exists():
        run_ok(salova_cmd("index", video.path, "--index", int8_index, "--device", device, "--quiet",
                          "--model", models.wide_salova, "--latent-dtype", "int8"), "salova index --latent-dtype int8")
    return index, int8_index, video


# ------------------------------------------------------------------------------------------------ size
def index_bytes(index: Path) -> tuple[int, dict[str, int], dict]:
    from salova.store.store import IndexStore

    with IndexStore.open(index) as store:
        stats = store.stats()
    total = sum(p.stat().st_size for p in index.iterdir() if p.is_file() and not p.name.startswith("."))
    return total, stats["bytes"], stats


def bench_size(sizes: Sizes, models: Models, device: str, tmp: Path, report: Report) -> None:
    fp16_index, int8_index, video = wide_indexes(sizes, models, device, tmp, report)
    measured = [(MEMORY_CONFIGS[k][0], *report.memory_indexes[(k, "long")]) for k in MEMORY_CONFIGS
                if (k, "long") in report.memory_indexes and k != "wide"]
    name = MEMORY_CONFIGS["wide"][0]
    measured += [(name, fp16_index, video), (f"{name}, `--latent-dtype int8`", int8_index, video)]
    rows, per_hour = [], {}
    for label, idx, vid in measured:
        total, parts, stats = index_bytes(idx)
        hours = vid.seconds / 3600
        per_hour[label] = total / hours
        lat = parts.get("latents", 0) + parts.get("latent_scales", 0)
        rows.append(f"| {label} | {stats['segments']} | {mib(total / hours)} | {mib(lat / hours)} |")
    fp16_h, int8_h = per_hour[name], per_hour[f"{name}, `--latent-dtype int8`"]
    report.headline["size int8/fp16 (paper-size latents)"] = f"{int8_h / fp16_h:.2f}x"

    # The paper's dimensions, per hour of video, analytically (bytes per row x rows).
    frames_h = 3600  # 1 FPS
    per_frame = PAPER["d_joint"] * 2 + 8  # frame_joint fp16 + frame_times f64
    seg_fixed = PAPER["d_joint"] * 4 + PAPER["d_route"] * 4  # joint + routing f32 (+ the same in FAISS caches)
    lat16 = PAPER["latents"] * PAPER["d_lat"] * 2
    lat8 = PAPER["latents"] * PAPER["d_lat"] + PAPER["latents"] * 4  # int8 + one f32 scale per latent
    paper_rows = []
    for seg_s in (SCENEWALK_SEGMENT_S, 10.0):
        segs = 3600 / seg_s
        base = frames_h * per_frame + segs * 2 * seg_fixed
        paper_rows.append(
            f"| {seg_s:g} s | {segs:.0f} | {mib(base + segs * lat16)} | {mib(base + segs * lat8)} "
            f"| {mib(segs * lat16)} / {mib(segs * lat8)} |"
        )
    report.add(f"""
### Index size per hour of video

Measured on the {duration(video.seconds)} video above (every file in the index directory: DuckDB, arrays,
FAISS caches), scaled to one hour. The tiny models' widths are small, so the paper-size row is the one that
matters; its encoder width (1024) also makes its joint vectors larger than CLIP-L's (768).

| index | segments | bytes per hour | of which latents |
|---|---|---|---|
{chr(10).join(rows)}

int8 / fp16 total size, paper-size latents: **{int8_h / fp16_h:.2f}x**.

The paper's model (CLIP-ViT-L/14-336, joint space 768; ST-Connector 256 latents x 1024, routing token 1024),
computed: per 1-FPS frame a 768-d fp16 joint vector + its time (1,544 B); per segment a 768-d joint and a
1024-d routing vector in float32, twice (array + FAISS cache, 14,336 B), plus the latents: 512 KiB in fp16,
257 KiB in int8 (with one float32 scale per latent). DuckDB rows are a few hundred bytes per segment and are
left out. Segment length: SceneWalk's average, 33.11 s (AdaptiveDetector defaults, as here), and 10 s for
cut-heavy footage:

| average segment | segments per hour | fp16 latents | int8 latents | latents alone fp16 / int8 |
|---|---|---|---|---|
{chr(10).join(paper_rows)}
""")


# ------------------------------------------------------------------------------------------------ int8
def bench_int8(sizes: Sizes, models: Models, device: str, tmp: Path, report: Report) -> None:
    """The same video indexed with fp16 and int8 latents: how much the retrieval / answer inputs move."""
    import torch

    from salova.models.focusfast import select_focus, visual_tokens
    from salova.models.salova import Salova
    from salova.store.store import IndexStore

    fp16_index, int8_index, video = wide_indexes(sizes, models, device, tmp, report)
    dirs = {"fp16": fp16_index, "int8": int8_index}
    model = Salova.from_pretrained(models.wide_salova, device=device)
    loaded = {}
    for dtype, d in dirs.items():
        with IndexStore.open(d) as store:
            vid = store.videos()[0].id
            loaded[dtype] = (np.array(store.load_routing(vid)), np.array(store.load_latents(vid), dtype=np.float32))
    (r16, l16), (r8, l8) = loaded["fp16"], loaded["int8"]
    questions = ["what happens at the start", "a red car", "the speaker writes on the board",
                 "people eating outdoors", "when does the scene change"]
    agree, score_diff, tok_diff, tok_cos, logit_diff, next_agree = [], [], [], [], [], []
    with torch.inference_mode():
        for q in questions:
            s16 = model.score(torch.from_numpy(r16), q)
            s8 = model.score(torch.from_numpy(r8), q)
            score_diff.append(float((s16 - s8).abs().max()))
            f16, f8 = select_focus(s16, 5), select_focus(s8, 5)
            agree.append(len(set(f16.tolist()) & set(f8.tolist())) / len(f16))
            v16 = visual_tokens(model.projector, torch.from_numpy(l16).to(device), torch.from_numpy(r16).to(device),
                                f16.to(device))
            v8 = visual_tokens(model.projector, torch.from_numpy(l8).to(device), torch.from_numpy(r8).to(device),
                               f16.to(device))
            tok_diff.append(float((v16 - v8).abs().max() / v16.abs().max()))
            tok_cos.append(float(torch.nn.functional.cosine_similarity(v16, v8, dim=-1).min()))
            logits = []
            for v in (v16, v8):
                embeds, _ = model.llm.build_inputs(q, v)
                logits.append(model.llm(embeds).logits[0, -1].float())
            logit_diff.append(float((logits[0] - logits[1]).abs().max()))
            top16, top8 = logits[0].topk(5).indices.tolist(), logits[1].topk(5).indices.tolist()
            next_agree.append(float(top16 == top8))
    lat_err = np.abs(l16 - l8)
    rel_rms = float(np.sqrt((lat_err**2).mean()) / np.sqrt((l16**2).mean()))
    report.headline["int8 top-5 agreement"] = f"{np.mean(agree):.2f}"
    table = md_table(["measure", "value"], [
        ["router scores, max abs difference", f"{max(score_diff):.3g}"],
        ["top-5 segments, agreement (fraction of the 5 shared)", f"{np.mean(agree):.2f}"],
        ["latents: max abs error / relative RMS error", f"{lat_err.max():.3g} / {rel_rms:.2%}"],
        ["FocusFast visual tokens: max abs diff (relative to max abs value) / min cosine",
         f"{max(tok_diff):.2%} / {min(tok_cos):.5f}"],
        ["LLM next-token logits: max abs diff / top-5 tokens identical (fraction of questions)",
         f"{max(logit_diff):.3g} / {np.mean(next_agree):.2f}"],
    ])
    report.add(f"""
### int8 vs fp16 latents: effect on retrieval and on the FocusFast input

The {duration(video.seconds)} video indexed twice with the paper-size-latent tiny checkpoint (random
weights; a tiny Llama as the LLM), `--latent-dtype fp16` and `int8`, {len(questions)} questions.
The SR-Router reads routing tokens, which are stored in float32 either way, so retrieval cannot change;
int8 touches only the focus latents that FocusFast feeds the LLM. (The random tiny LLM's next-token logits
are nearly tied, so its top-5 order can flip on differences of 1e-4; the absolute difference is the number
to read there.)

{table}
""")


# ------------------------------------------------------------------------------------------------ connector
def connector_worker(mode: str, frames: int, device: str, reps: int) -> dict:
    """``mode`` "mem:DROP": the peak memory of one step with that max token drop (one process per setting,
    so that one peak does not hide the other); "time": step times of both settings, alternating step by
    step in one process, so that other load on the machine hits both alike."""
    import torch

    from salova.models.connector import ConnectorConfig, STConnector

    torch.manual_seed(0)
    dev = torch.device(device)
    conn = STConnector(ConnectorConfig(dim=1024, num_latents=256, tokens_per_frame=144, max_token_drop=0.7))
    conn = conn.to(dev).train()
    patches = torch.randn(1, frames, 144, 1024, device=dev)
    mask = torch.ones(1, frames, dtype=torch.bool, device=dev)
    cls_ = torch.randn(1, frames, 1024, device=dev)

    def step(drop: float) -> float:
        conn.config.max_token_drop = drop  # read at every forward
        t0 = time.perf_counter()
        routing, latents = conn(patches, mask, cls_)
        (routing.square().mean() + latents.square().mean()).backward()
        conn.zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - t0

    if mode.startswith("mem:"):
        drop = float(mode[4:])
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            step(drop)
            peak = torch.cuda.max_memory_allocated(dev) - base
        else:
            with RssSampler() as rss:
                step(drop)
            peak = rss.growth
        return {"drop": drop, "peak_bytes": int(max(peak, 0))}
    times: dict[str, list[float]] = {"0.0": [], "0.7": []}
    for drop in (0.0, 0.7):  # warm-up
        step(drop)
    for _ in range(reps):
        for drop in (0.0, 0.7):
            times[str(drop)].append(step(drop))
    return {"times": times, "threads": torch.get_num_threads()}


def bench_connector(sizes: Sizes, device: str, report: Report) -> None:
    from salova.models.connector import tokens_kept

    def worker(mode: str) -> dict:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--connector-worker", mode,
               str(sizes.connector_frames), device, str(sizes.connector_reps)]
        return json.loads(run_ok(cmd, "connector worker").out.strip().splitlines()[-1])

    peaks = {drop: worker(f"mem:{drop}")["peak_bytes"] for drop in (0.0, 0.7)}
    timed = worker("time")
    times = {drop: timed["times"][str(drop)] for drop in (0.0, 0.7)}
    n = sizes.connector_frames * 144
    rows = {drop: {"kept": tokens_kept(n, drop) if drop else n, "step_s": median(times[drop]),
                   "peak_bytes": peaks[drop]} for drop in (0.0, 0.7)}
    for drop, r in rows.items():
        log(f"  connector drop {drop}: {r['step_s']:.2f} s, peak +{mib(r['peak_bytes'])}")
    a, b = rows[0.0], rows[0.7]
    a["tokens"] = b["tokens"] = n
    a["threads"] = timed["threads"]
    t_ratio, m_ratio = b["step_s"] / a["step_s"], b["peak_bytes"] / max(a["peak_bytes"], 1)
    paired = [y / x for x, y in zip(times[0.0], times[0.7], strict=True)]
    report.headline["connector time drop0.7/drop0"] = f"{t_ratio:.2f}x"
    mem_note = "torch.cuda.max_memory_allocated above the inputs" if device.startswith("cuda") else \
        "the process's RSS sampled every ms during the step, minus its RSS before the step"
    report.add(f"""
### ST-Connector cost: dynamic token drop 0.7 vs 0 (training mode)

`STConnector` at the paper's size (dim 1024, depth 2, 2 heads x 64, 256 latents + routing latent,
144 tokens per frame), one segment of {sizes.connector_frames} frames ({a["tokens"]:,} media tokens), float32, on
{device} ({a["threads"]} threads); forward + backward of a mean-square loss. Time: median of {sizes.connector_reps}
steps per setting after a warm-up, the two settings alternating step by step in one process (per-pair ratios:
{", ".join(f"{r:.2f}" for r in paired)}). Peak memory: {mem_note}, for a first step, each setting in its own
process.
With 0.7 the drop ratio is `0.7 * min(n / 18000, 1)`, so {b["kept"]:,} of {b["tokens"]:,} tokens are kept.

| max token drop | tokens kept | step time | peak memory |
|---|---|---|---|
| 0 | {a["kept"]:,} | {a["step_s"]:.2f} s | {mib(a["peak_bytes"])} |
| 0.7 | {b["kept"]:,} | {b["step_s"]:.2f} s | {mib(b["peak_bytes"])} |
| ratio 0.7 / 0 | {b["kept"] / a["kept"]:.2f} | **{t_ratio:.2f}x** | **{m_ratio:.2f}x** |
""")


# ------------------------------------------------------------------------------------------------ encoder
def bench_encoder(sizes: Sizes, models: Models, device: str, encoder: str | None, report: Report) -> None:
    import torch

    from salova.models.encoder import VisionTextEncoder

    name = encoder or str(models.encoder)
    enc = VisionTextEncoder.from_pretrained(name, device=device)
    if device.startswith("cuda"):
        enc.model.half()
    frames = np.random.default_rng(0).integers(0, 256, (16, 720, 1280, 3), dtype=np.uint8)
    with torch.inference_mode():
        enc.encode_frames(frames)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(sizes.encoder_batches):
            enc.encode_frames(frames)
        _sync(device)
        elapsed = time.perf_counter() - t0
    fps = sizes.encoder_batches * 16 / elapsed
    label = "tiny random CLIP (56 px)" if encoder is None else f"`{encoder}`"
    report.headline["encoder frames/s"] = f"{fps:.0f} ({device})"
    report.add(f"""
### Encoder throughput

{label} on {device}, batches of 16 random 1280x720 RGB frames, pre-processing (resize, normalise) included:
**{fps:.0f} frames/s** ({sizes.encoder_batches} batches after a warm-up). At 1 FPS sampling that is
{fps / 60:.1f} minutes of video per second for the encoder alone. (`--encoder HUB_ID_OR_DIR` measures a real
checkpoint, e.g. `openai/clip-vit-large-patch14-336` on a GPU.)
""")


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes); never writes the docs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--encoder", default=None, help="encoder for the throughput section (default: tiny random)")
    p.add_argument("--no-docs", action="store_true", help="full mode: print only, do not touch docs/benchmarks.md")
    p.add_argument("--keep", action="store_true", help="keep the indexes written under benchmarks/_work")
    p.add_argument("--connector-worker", nargs=4, metavar=("MODE", "FRAMES", "DEVICE", "REPS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.connector_worker:
        mode, frames, device, reps = args.connector_worker
        print(json.dumps(connector_worker(mode, int(frames), device, int(reps))))
        return 0

    from transformers.utils import logging as hf_logging

    from salova.runtime import resolve_device

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = str(resolve_device(args.device))
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"--only: unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = load_avg()
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=WORK))
    report = Report()
    try:
        models = make_models(tmp / "models")
        if "speed" in only:
            log("speed ...")
            bench_speed(sizes, models, device, tmp, report)
        if "memory" in only:
            log("memory ...")
            bench_memory(sizes, models, device, tmp, report)
        if "size" in only:
            log("size ...")
            bench_size(sizes, models, device, tmp, report)
        if "int8" in only:
            log("int8 ...")
            bench_int8(sizes, models, device, tmp, report)
        if "connector" in only:
            log("connector ...")
            bench_connector(sizes, device, report)
        if "encoder" in only:
            log("encoder ...")
            bench_encoder(sizes, models, device, args.encoder, report)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    command = "python benchmarks/bench_index.py" + (" --quick" if args.quick else "") + \
        (f" --device {args.device}" if args.device != "auto" else "") + \
        (f" --only {args.only}" if set(only) != set(SECTIONS) else "") + \
        (f" --encoder {args.encoder}" if args.encoder else "")
    summary = "\n".join(f"- {k}: {v}" for k, v in report.headline.items())
    record_run("index", {"command": command, "machine": machine_info(device), "headline": report.headline,
                         "raw": report.raw, "minutes": round(elapsed / 60, 1)})
    body = f"""
## Indexing: speed, memory, index size, connector cost

Command: `{command}` ({elapsed / 60:.1f} min in all, {time.strftime("%Y-%m-%d")}).
Machine: {machine_line(machine_info(device))}. Load average before / after: {load_before} / {load_avg()}
(the machine is shared; timings taken under load are noisier and slower, ratios less so).

Headline numbers:
{summary}

""" + "\n\n".join(report.parts)
    if args.quick or args.no_docs:
        log(f"done in {elapsed / 60:.1f} min (not written to docs: {'--quick' if args.quick else '--no-docs'})")
    else:
        path = write_docs_section(DOC_START, DOC_END, body)
        log(f"done in {elapsed / 60:.1f} min; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
