"""Indexing on a laptop CPU and search at a million segments: encoders, preprocessing, overlap, reuse, FAISS.

Each part runs on its own (``--only``) and appends its figures to ``benchmarks/results/perf.jsonl``; the docs
section is rendered from the latest figures of every part, so parts measured in separate runs still show
(each with its own date and load average). Encoders are built at their real size with random weights
(no download): speed is real, retrieval quality is the published one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    WORK,
    child_env,
    machine_info,
    machine_line,
    md_table,
    median,
    record_run,
    run_child,
    scene_video,
    section_markers,
    write_docs_section,
)

PARTS = ("encoders", "preprocess", "search", "noop", "static", "hour", "speed", "memory")
DOC_START, DOC_END = section_markers("bench_perf", "benchmarks/bench_perf.py")
# name -> (vision config, published MSCOCO 5k text->image R@1 / R@5, open_clip retrieval results)
ENCODERS = {
    "openai/clip-vit-base-patch32": ("clip", 768, 12, 12, 32, 224, 512, "30.4 / 55.9"),
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": ("clip", 768, 12, 12, 32, 224, 512, "39.3 / 65.4"),
    "openai/clip-vit-base-patch16": ("clip", 768, 12, 12, 16, 224, 512, "33.1 / 58.4"),
    "google/siglip-base-patch16-224": ("siglip", 768, 12, 12, 16, 224, 768, "47.8 / 72.4"),
    "openai/clip-vit-large-patch14-336": ("clip", 1024, 24, 16, 14, 336, 768, "37.1 / 61.6"),
}
CPU_DEFAULT = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


def log(msg: str) -> None:
    print(f"[bench_perf] {msg}", file=sys.stderr, flush=True)


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def real_size_encoder(name: str, root: Path, image_size: int | None = None) -> Path:
    """A random-weight encoder with ``name``'s vision tower at its real size (small text tower), saved."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

    from salova.tiny import make_tokenizer

    kind, width, layers, heads, patch, size, joint, _ = ENCODERS[name]
    size = image_size or size
    path = root / f"{name.replace('/', '--')}-{size}"
    if (path / "config.json").is_file():
        return path
    torch.manual_seed(0)
    tok = make_tokenizer(add_bos_eos=(kind == "clip"))
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)
    vision = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                  num_attention_heads=heads, image_size=size, patch_size=patch)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, "max_position_embeddings": 77}, vision_config=vision,
                                     projection_dim=joint))
    else:
        text["hidden_size"] = width  # SigLIP's joint space is the text width
        model = SiglipModel(SiglipConfig(text_config={**text, "max_position_embeddings": 64}, vision_config=vision))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


VIDEO_S = 180  # one 720p30 benchmark video serves every part


def sample_frames(n: int, seconds: float = VIDEO_S) -> np.ndarray:
    """n RGB 720p frames of the benchmark video kind, 1 s apart."""
    from salova.video import SampledFrame, VideoScanner

    video = scene_video(seconds, (1280, 720), 30, log=log)
    out = [e.rgb for e in VideoScanner(video.path) if isinstance(e, SampledFrame)]
    return np.stack(out[:n])


def _timed_encode(enc, frames: np.ndarray, reps: int = 2) -> tuple[float, np.ndarray]:
    import torch

    with torch.inference_mode():
        enc.encode_frames(frames[:2])
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            joint = enc.encode_frames(frames).joint.float().numpy()
            times.append((time.perf_counter() - t0) / len(frames))
    return min(times), joint


def part_encoders(tmp: Path) -> dict:
    import torch

    from salova.models.encoder import VisionTextEncoder

    frames = sample_frames(8)
    from salova.models.encoder import _cpu_bf16

    bf16 = _cpu_bf16()
    rows = {name: {"fp32_ms": [], "bf16_ms": [], "quality": ENCODERS[name][-1]} for name in ENCODERS}
    for _ in range(2):  # rounds over every encoder, best of each: load on the shared machine comes and goes
        for name, row in rows.items():
            n = 2 if "large" in name else 8
            enc = VisionTextEncoder.from_pretrained(real_size_encoder(name, WORK / "encoders"))
            fp32_s, j32 = _timed_encode(enc, frames[:n])
            row["fp32_ms"].append(fp32_s * 1000)
            if bf16:
                enc.bf16_frames = True  # what salova runs: bf16 autocast, float32 weights
                bf_s, j16 = _timed_encode(enc, frames[:n])
                row["bf16_ms"].append(bf_s * 1000)
                row["bf16_min_cos"] = float((j32 * j16).sum(1).min())
            log(f"{name}: {row}")
    for row in rows.values():
        row["fp32_ms"] = min(row["fp32_ms"])
        row["bf16_ms"] = min(row["bf16_ms"]) if row["bf16_ms"] else float("nan")
    return {"bf16_supported": bf16, "rows": rows, "torch_threads": torch.get_num_threads()}


def _joint(enc, pixels):
    """Pixel values [b, 3, s, s] -> L2-normalised joint embeddings [b, j] (CLIP)."""
    import torch

    pooled = enc.model.vision_model(pixel_values=pixels).pooler_output
    return torch.nn.functional.normalize(enc.model.visual_projection(pooled), dim=-1)


def part_preprocess(tmp: Path) -> dict:
    import torch

    from salova.models.encoder import VisionTextEncoder

    frames = sample_frames(8)
    out = {}
    for name, n in (("openai/clip-vit-large-patch14-336", 4), (CPU_DEFAULT, 8)):
        enc = VisionTextEncoder.from_pretrained(real_size_encoder(name, WORK / "encoders"))
        x = frames[:n]
        with torch.inference_mode():
            t0 = time.perf_counter()
            old = enc._resize_float(torch.from_numpy(x))
            old_s = (time.perf_counter() - t0) / n
            t0 = time.perf_counter()
            new = enc.pixel_values(x)
            new_s = (time.perf_counter() - t0) / n
            mean = torch.tensor(enc.preprocess.mean).view(1, 3, 1, 1)
            std = torch.tensor(enc.preprocess.std).view(1, 3, 1, 1)
            old = (old.clamp(0, 1) - mean) / std

            a, b = _joint(enc, old), _joint(enc, new)
        cos = (a * b).sum(1)
        out[name] = {"old_ms": old_s * 1000, "new_ms": new_s * 1000, "min_cos": float(cos.min()),
                     "mean_cos": float(cos.mean()), "pixel_mae": float((old - new).abs().mean() * 0.27 * 255)}
        log(f"{name}: {out[name]}")
    return out


def part_search(tmp: Path, n: int = 1_000_000, d: int = 512, queries: int = 100) -> dict:
    import faiss

    import salova.store.search as search

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # process-wide (torch shares the OpenMP pool): restored below
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((n // 50, d)).astype(np.float32)  # ~50 segments per topic

    def around(count: int, spread: float) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), count)]
        x += spread * rng.standard_normal((count, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    x, q = around(n, 0.6), around(queries, 1.0)
    ids = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    index = search.build_index(x, ids)
    build_s = time.perf_counter() - t0
    ivf = search._ivf(index)
    ivf.nprobe = max(search._MIN_PROBE, ivf.nlist // search._PROBE_FRACTION)
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    approx_t, exact_t, recall = [], [], []
    for i in range(queries):
        t0 = time.perf_counter()
        _, got = index.search(q[i : i + 1], 10)
        approx_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, want = flat.search(q[i : i + 1], 10)
        exact_t.append(time.perf_counter() - t0)
        recall.append(len(set(got[0]) & set(want[0])) / 10)
    faiss.omp_set_num_threads(threads)
    return {"n": n, "d": d, "nlist": ivf.nlist, "nprobe": ivf.nprobe, "build_s": build_s,
            "ivf_ms": median(approx_t) * 1000, "flat_ms": median(exact_t) * 1000, "recall10": float(np.mean(recall))}


def salova(*args) -> list[str]:
    return [sys.executable, "-m", "salova_cli", *map(str, args)]


def part_noop(tmp: Path) -> dict:
    from salova.testing.videos import make_video
    from salova.tiny import make_tiny_encoder

    enc = make_tiny_encoder(tmp / "clip", "clip")
    videos = tmp / "videos"
    for i in range(100):
        make_video(videos / f"{i:03d}.mp4", [(1.0, (i, 100, 200)), (1.0, "noise")], fps=10, size=(64, 48))
    index = tmp / "idx"
    first = run_child(salova("index", videos, "--index", index, "--encoder", enc, "--quiet"), env=child_env())
    assert first.code == 0, first.err[-2000:]
    again = [run_child(salova("index", videos, "--index", index, "--encoder", enc, "--quiet"), env=child_env())
             for _ in range(5)]
    helps = [run_child(salova("--help"), env=child_env()) for _ in range(5)]
    return {"first_s": first.wall_s, "noop_s": median([r.wall_s for r in again]),
            "noop_runs": [r.wall_s for r in again], "help_s": median([r.wall_s for r in helps])}


def _scan_stats(models, path: Path, **settings) -> dict:
    from salova.pipeline.encode import EncodeSettings, Indexer

    calls = []
    real = models.encoder.encode_frames

    def counting(x):
        t0 = time.perf_counter()
        out = real(x)
        calls.append((len(x), time.perf_counter() - t0))
        return out

    models.encoder.encode_frames = counting
    try:
        indexer = Indexer(models, None, EncodeSettings(**settings))
        t0 = time.perf_counter()
        _, result, segs = indexer.scan(path)
        wall = time.perf_counter() - t0
    finally:
        del models.encoder.encode_frames
    return {"wall_s": wall, "encoded": sum(c[0] for c in calls), "encode_s": sum(c[1] for c in calls),
            "reused": indexer.frames_reused, "segments": segs, "cuts": result.cuts}


def part_static(tmp: Path) -> dict:
    """A slide-like video (stills held 5-40 s, 720p30) with and without reuse; the CPU default at real size."""
    from salova.runtime import load_models
    from salova.testing.videos import VideoWriter

    path = WORK / "static_v1_1280x720_30fps_180s.mp4"
    rng = np.random.default_rng(0)
    if not path.is_file():
        with VideoWriter(path, 30, (1280, 720)) as w:
            left = 180.0
            while left > 0:
                hold = min(left, float(rng.uniform(5, 40)))
                img = np.repeat(np.repeat(rng.integers(0, 256, (45, 80, 3), np.uint8), 16, 0), 16, 1)
                for _ in range(round(hold * 30)):
                    w.write(img)
                left -= hold
    models = load_models(encoder=real_size_encoder(CPU_DEFAULT, WORK / "encoders"), device="cpu")
    plain = _scan_stats(models, path, dedup_threshold=0.0)
    dedup = _scan_stats(models, path, dedup_threshold=1.0)
    a = np.stack([s.joint for s in plain["segments"]])
    b = np.stack([s.joint for s in dedup["segments"]])
    queries = rng.standard_normal((200, a.shape[1])).astype(np.float32)
    top = [set(np.argsort(-(a @ qq))[:5]) == set(np.argsort(-(b @ qq))[:5]) for qq in queries]
    return {"frames": plain["encoded"], "encoded_with_reuse": dedup["encoded"], "reused": dedup["reused"],
            "wall_plain_s": plain["wall_s"], "wall_reuse_s": dedup["wall_s"], "encode_plain_s": plain["encode_s"],
            "encode_reuse_s": dedup["encode_s"], "segments": len(a), "same_cuts": plain["cuts"] == dedup["cuts"],
            "min_segment_cos": float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min()),
            "top5_same": float(np.mean(top))}


def part_hour(tmp: Path, seconds: float = VIDEO_S) -> dict:
    """The CPU default encoder at real size on 3 min of 720p30: stages alone, then the indexer, overlap on/off."""
    import torch

    from salova.runtime import load_models
    from salova.video import SampledFrame, VideoScanner
    from salova.video.backends import open_frames

    video = scene_video(seconds, (1280, 720), 30, log=log)
    models = load_models(encoder=real_size_encoder(CPU_DEFAULT, WORK / "encoders"), device="cpu")
    t0 = time.perf_counter()
    source, _ = open_frames(video.path)  # the decoder auto picks, frames only: no detector input, no samples
    for _ in source:
        pass
    source.close()
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frames = [e.rgb for e in VideoScanner(video.path) if isinstance(e, SampledFrame)]
    scan_s = time.perf_counter() - t0
    with torch.inference_mode():
        models.encoder.encode_frames(np.stack(frames[:2]))
        t0 = time.perf_counter()
        for i in range(0, len(frames), 16):
            models.encoder.encode_frames(np.stack(frames[i : i + 16]))
        encode_s = time.perf_counter() - t0
    del frames
    runs = {True: [], False: []}
    for overlap in (True, False, False, True):  # alternating, best of 2 each: the machine is shared
        runs[overlap].append(_scan_stats(models, video.path, overlap=overlap))
    on, off = (min(runs[k], key=lambda r: r["wall_s"]) for k in (True, False))
    per_hour = 3600 / seconds / 60  # seconds measured -> minutes per hour of video
    return {"video_s": seconds, "decode_min_per_h": decode_s * per_hour, "scan_min_per_h": scan_s * per_hour,
            "encode_min_per_h": encode_s * per_hour,
            "overlap_min_per_h": on["wall_s"] * per_hour, "serial_min_per_h": off["wall_s"] * per_hour,
            "frames": on["encoded"] + on["reused"], "reused": on["reused"], "same_cuts": on["cuts"] == off["cuts"],
            "bf16": models.encoder.bf16_frames}


def part_speed(tmp: Path, seconds: float = VIDEO_S, rounds: int = 3) -> dict:
    """`salova index` (tiny encoder, 336-px input) vs `scenedetect detect-adaptive`, child processes, paired; then
    where salova's time goes: the scan alone in this process per decoder, and the fixed start-up cost."""
    from bench_index import check_cuts

    from salova.testing.videos import VideoWriter
    from salova.tiny import make_tiny_encoder
    from salova.video import VideoScanner

    video = scene_video(seconds, (1280, 720), 30, log=log)
    enc = make_tiny_encoder(tmp / "clip336", "clip", image_size=336)
    sd = [sys.executable, "-m", "scenedetect", "-i", str(video.path), "detect-adaptive"]
    rows, loads = [], []
    for r in range(rounds):
        index = tmp / f"idx{r}"
        loads.append(load_avg())
        pair = {}
        for which in (("sd", "sv") if r % 2 else ("sv", "sd")):
            cmd = sd if which == "sd" else salova("index", video.path, "--index", index, "--encoder", enc, "--quiet")
            res = run_child(cmd, env=child_env())
            assert res.code == 0, res.err[-2000:]
            pair[which], pair[which + "_cpu"] = res.wall_s, res.cpu_s
        rows.append(pair)
        log(f"round {r}: {pair}")
    cuts = check_cuts(video.path, tmp / "idx0", tmp / "cutcheck")
    scans = {}
    for backend in ("sparse", "opencv", "sparse", "opencv"):  # alternating; best of 2 each
        t0 = time.perf_counter()
        scanner = VideoScanner(video.path, backend=backend)
        for _ in scanner:
            pass
        scans[backend] = min(scans.get(backend, float("inf")), time.perf_counter() - t0)
    short = tmp / "two_seconds.mp4"  # the fixed cost: a 2-s 720p video, fresh index, whole process
    with VideoWriter(short, 30, (1280, 720)) as w:
        for i in range(60):
            w.write(np.full((720, 1280, 3), (i * 4) % 256, np.uint8))
    starts = [run_child(salova("index", short, "--index", tmp / f"short{i}", "--encoder", enc, "--quiet"),
                        env=child_env()) for i in range(3)]
    bound = min(_side_by_side(video.path, enc) for _ in range(2))
    return {"video_s": seconds, "salova_s": [p["sv"] for p in rows], "scenedetect_s": [p["sd"] for p in rows],
            "salova_cpu_s": [p["sv_cpu"] for p in rows], "scenedetect_cpu_s": [p["sd_cpu"] for p in rows],
            "ratios": [p["sv"] / p["sd"] for p in rows], "same_cuts": cuts.equal, "loads": loads,
            "scan_sparse_s": scans["sparse"], "scan_opencv_s": scans["opencv"],
            "startup_s": median([r.wall_s for r in starts]), "startup_cpu_s": median([r.cpu_s for r in starts]),
            "side_by_side_s": bound}


def _side_by_side(video: Path, enc: Path) -> float:
    """Seconds until both end: one process loading the models as `salova index` does, one scanning ``video``,
    started together. The floor for any design that overlaps start-up with decoding on this machine."""
    import subprocess

    load = [sys.executable, "-c", f"from salova.runtime import load_models; load_models(encoder={str(enc)!r}, "
            "device='cpu')"]
    scan = [sys.executable, "-c", f"from salova.video import VideoScanner\nfor _ in VideoScanner({str(video)!r}): pass"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for c in (load, scan)]
    assert all(p.wait() == 0 for p in procs)
    return time.perf_counter() - t0


def part_memory(tmp: Path) -> dict:
    """Peak RSS of `salova index` with the CPU default encoder at its real size: 60 min vs 5 min of video."""
    enc = real_size_encoder(CPU_DEFAULT, WORK / "encoders")
    out = {}
    for minutes in (5, 60):
        video = scene_video(minutes * 60, (320, 240), 10, seed=2, log=log)
        res = run_child(salova("index", video.path, "--index", tmp / f"mem{minutes}", "--encoder", enc, "--json",
                               "--no-speech"), env=child_env())
        assert res.code == 0, res.err[-2000:]
        out[f"rss_{minutes}"] = res.peak_rss
        out[f"wall_{minutes}"] = res.wall_s
        out[f"segments_{minutes}"] = json.loads(res.out)["segments"]
        log(f"memory {minutes} min: {res.peak_rss / 2**20:.0f} MiB, {res.wall_s:.0f} s")
    out["ratio"] = out["rss_60"] / out["rss_5"]
    return out


def latest() -> dict:
    path = RESULTS / "perf.jsonl"
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            e = json.loads(line)
            out[e["part"]] = e
    return out


def render(results: dict) -> str:
    lines = ["## Indexing on a CPU, and search at a million segments", "",
             "Command: `python benchmarks/bench_perf.py [--only PART]`; every part below gives its own date, machine "
             "load and figures (raw: `benchmarks/results/perf.jsonl`). Encoders have random weights at their real "
             "size: the speed is theirs, the quality column is the published one (open_clip's retrieval results, "
             "MSCOCO 5k, text -> image R@1 / R@5)."]
    for part in PARTS:
        e = results.get(part)
        if e is None:
            continue
        r, head = e["result"], f"({e['date']}; load before / after: {e['load_before']} / {e['load_after']})"
        lines += ["", f"### {part}", "", f"Machine: {e['machine']} {head}", ""]
        lines += RENDER[part](r)
    return "\n".join(lines)


def _enc_rows(r):
    rows = [[n, v["quality"], f"{v['fp32_ms']:.0f} ms", f"{v.get('bf16_ms', float('nan')):.0f} ms",
             f"{v.get('bf16_min_cos', float('nan')):.6f}", f"{v['fp32_ms'] * 3600 / 60000:.1f} min"]
            for n, v in r["rows"].items()]
    return [md_table(["encoder", "MSCOCO R@1 / R@5", "fp32 / frame", "bf16 / frame", "bf16 vs fp32 min cosine",
                      "encoder alone, 1 h at 1 FPS (fp32)"], rows),
            "", f"bf16 kernels on this CPU: {r['bf16_supported']}; torch threads: {r['torch_threads']}; best of 2 "
            "rounds over all encoders, 8 frames (CLIP-L: 2) of 720p per call, preprocessing included. bf16 = "
            "autocast with float32 weights (what salova runs when the cosine check passes)."]


def _pre_rows(r):
    rows = [[n, f"{v['old_ms']:.1f} ms", f"{v['new_ms']:.1f} ms", f"{v['min_cos']:.7f}", f"{v['mean_cos']:.7f}"]
            for n, v in r.items()]
    return [md_table(["encoder", "float antialiased bicubic / frame", "uint8 OpenCV area / frame",
                      "joint min cosine", "mean cosine"], rows)]


def _search_rows(r):
    return [md_table(["segments", "dims", "IVF lists / probed", "build", "IVF / query", "flat / query",
                      "recall@10 vs exact"],
                     [[f"{r['n']:,}", r["d"], f"{r['nlist']} / {r['nprobe']}", f"{r['build_s']:.0f} s",
                       f"{r['ivf_ms']:.1f} ms", f"{r['flat_ms']:.1f} ms", f"{r['recall10']:.3f}"]]),
            "", "Synthetic unit vectors around n/50 centres (segments gather by video and topic), queries near "
            "them; one thread, one query at a time."]


def _noop_rows(r):
    return [f"100 indexed files, re-run with nothing to encode: **{r['noop_s']:.2f} s** (median of 5, whole process; "
            f"first run {r['first_s']:.1f} s). `salova --help`: **{r['help_s']:.2f} s**."]


def _static_rows(r):
    return [f"3 min 720p30 of stills held 5-40 s, CPU default encoder (real size): {r['reused']} of {r['frames']} "
            f"1-FPS frames reuse a previous frame's features; encoder time {r['encode_plain_s']:.1f} s -> "
            f"{r['encode_reuse_s']:.1f} s, scan {r['wall_plain_s']:.1f} s -> {r['wall_reuse_s']:.1f} s. "
            f"Segments: {r['segments']}, cuts identical: {r['same_cuts']}; top-5 segments identical for "
            f"{r['top5_same']:.2f} of 200 random queries."]


def _hour_rows(r):
    decode = [["decode alone", f"{r['decode_min_per_h']:.1f}"],
              ["detect + sample (scanner minus decode)", f"{r['scan_min_per_h'] - r['decode_min_per_h']:.1f}"]] \
        if "decode_min_per_h" in r else []
    return [md_table(["stage", "minutes per hour of 720p30 video"],
                     decode + [["decode + detect + sample (scanner alone)", f"{r['scan_min_per_h']:.1f}"],
                      ["encode, CPU default encoder (alone)", f"{r['encode_min_per_h']:.1f}"],
                      ["indexer, encoding beside decoding", f"**{r['overlap_min_per_h']:.1f}**"],
                      ["indexer, one thread", f"{r['serial_min_per_h']:.1f}"]]),
            "", f"Measured on {r['video_s'] / 60:.0f} min of video and scaled to an hour (bf16 frames: "
            f"{r.get('bf16', '?')}); cuts identical with and without the overlap: {r['same_cuts']}."]


def _speed_rows(r):
    cpu = r.get("salova_cpu_s")
    rows = [[i + 1, f"{a:.1f} s", f"{b:.1f} s", f"{a / b:.2f}x"]
            + ([f"{cpu[i]:.1f} s / {r['scenedetect_cpu_s'][i]:.1f} s"] if cpu else [])
            for i, (a, b) in enumerate(zip(r["salova_s"], r["scenedetect_s"], strict=True))]
    head = ["round", "salova index", "scenedetect detect-adaptive", "ratio"] + (["CPU time salova / scenedetect"]
                                                                              if cpu else [])
    lines = [md_table(head, rows), "",
             f"{r['video_s'] / 60:.0f} min 1280x720 @ 30 fps, tiny encoder with a 336-px input, whole processes; "
             f"median ratio **{median(r['ratios']):.2f}x**; cuts identical: {r['same_cuts']}."]
    if "scan_sparse_s" in r:
        lines += ["", f"Where the time goes: decoding and scene detection alone (`VideoScanner`, in-process, best of "
                  f"2) take {r['scan_sparse_s']:.1f} s with the sparse detector frames (auto) and "
                  f"{r['scan_opencv_s']:.1f} s with OpenCV's whole-frame conversion (what scenedetect does); the "
                  f"fixed cost of a `salova index` process (imports, encoder load, index creation; a 2-s video) is "
                  f"{r['startup_s']:.1f} s wall, {r['startup_cpu_s']:.1f} s CPU."]
    if "side_by_side_s" in r:
        sd = median(r["scenedetect_s"])
        lines += ["", f"Overlapping that start-up with decoding, at best: a process loading the models and one "
                  f"scanning the video, started together, are both done after {r['side_by_side_s']:.1f} s "
                  f"({r['side_by_side_s'] / sd:.2f}x scenedetect's median, before any encoding or writing): on "
                  f"2 cores the two compete for the same CPU (both tools' CPU time is in the table)."]
    return lines


def _memory_rows(r):
    mib = 2**20
    return [md_table(["video", "peak RSS", "segments", "wall"],
                     [["5 min", f"{r['rss_5'] / mib:.0f} MiB", r["segments_5"], f"{r['wall_5']:.0f} s"],
                      ["60 min", f"{r['rss_60'] / mib:.0f} MiB", r["segments_60"], f"{r['wall_60']:.0f} s"]]),
            "", f"`salova index --no-speech`, CPU default encoder at its real size (random weights), 320x240 @ 10 fps "
            f"(what can grow is per 1-FPS frame and per segment, not per decoded pixel); peak RSS of the child "
            f"(`VmHWM`). 60 min / 5 min: **{r['ratio']:.2f}x**."]


RENDER = {"encoders": _enc_rows, "preprocess": _pre_rows, "search": _search_rows, "noop": _noop_rows,
          "static": _static_rows, "hour": _hour_rows, "speed": _speed_rows, "memory": _memory_rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--no-docs", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = p.parse_args(argv)
    parts = [x for x in args.only.split(",") if x]
    info = machine_line(machine_info("cpu"))
    for part in parts:
        with tempfile.TemporaryDirectory(dir=WORK if WORK.is_dir() else None) as tmp:
            before = load_avg()
            log(f"{part} ...")
            result = globals()[f"part_{part}"](Path(tmp))
            record_run("perf", {"part": part, "machine": info, "load_before": before, "load_after": load_avg(),
                                "result": result})
    if not args.no_docs:
        write_docs_section(DOC_START, DOC_END, render(latest()))
    print(render(latest()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
