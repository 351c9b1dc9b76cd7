"""Retrieval latency of `ask` and `search` as the library grows: 10, 100 and 1000 videos.

The index is filled with synthetic vectors (no decoding): each video has ``--segments`` segments with
``--frames`` 1-FPS frames each; vectors are random unit vectors of the encoder's joint width, routing
tokens and latents of the tiny SALOVA checkpoint's width. The same encoder/checkpoint is used for every
index so each query costs the same text encoding; what changes is the library size.

Measured per query, in one process with models loaded (a `Session`, as in batch mode):
  - search: text encoding + FAISS over all segments + router re-rank of the candidate videos,
  - ask (--no-answer): router scores over one video's segments + "at" refinement.
Usage:
    python benchmarks/bench_retrieval.py            # 10, 100, 1000 videos
    python benchmarks/bench_retrieval.py --quick    # 10, 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from salova.index.records import SegmentData  # noqa: E402
from salova.index.store import IndexStore  # noqa: E402
from salova.pipeline.files import content_hash  # noqa: E402
from salova.retrieval import Session  # noqa: E402
from salova.runtime import load_models  # noqa: E402
from salova.tiny import make_tiny_encoder, make_tiny_salova  # noqa: E402


def unit(rng: np.random.Generator, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def build_index(root: Path, models, n_videos: int, n_segments: int, n_frames: int, probe: Path, seed: int = 0):
    rng = np.random.default_rng(seed)
    enc, conn = models.encoder, models.salova.config.connector
    dj, d, latents = enc.joint_width, conn.dim, conn.num_latents
    with IndexStore.open(root, writable=True, create=True, fingerprint=models.fingerprint()) as store:
        for v in range(n_videos):
            segs = []
            for i in range(n_segments):
                fj = unit(rng, n_frames, dj)
                segs.append(SegmentData(
                    idx=i, start_s=10.0 * i, end_s=10.0 * (i + 1), start_frame=300 * i, end_frame=300 * (i + 1),
                    joint=fj.mean(0), frame_times=10.0 * i + np.arange(n_frames, dtype=np.float64),
                    frame_joint=fj, routing=rng.standard_normal(d).astype(np.float32),
                    latents=rng.standard_normal((latents, d)).astype(np.float16),
                ))
            path = probe if v == 0 else root.parent / f"video_{v:05d}.mp4"
            st = probe.stat() if v == 0 else None
            store.put_video(
                path=str(path), size=st.st_size if st else 1000 + v, mtime_ns=st.st_mtime_ns if st else 0,
                content_hash=content_hash(probe, st.st_size) if st else f"h{v}", duration_s=10.0 * n_segments,
                fps=30.0, num_frames=300 * n_segments, segments=segs,
            )


def timed(fn, repeat: int) -> float:
    fn()  # warm-up: first FAISS load / page cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 100 videos only")
    ap.add_argument("--segments", type=int, default=100, help="segments per video")
    ap.add_argument("--frames", type=int, default=10, help="1-FPS frames per segment")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--width", type=int, default=256, help="tiny encoder width (joint and routing dims)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [10, 100] if args.quick else [10, 100, 1000]
    torch.set_num_threads(1)  # tiny models are latency-bound; more threads only add contention

    work = Path(tempfile.mkdtemp(prefix="salova-bench-retrieval-"))
    enc_dir = make_tiny_encoder(work / "encoder", "clip", width=args.width)
    ckpt = make_tiny_salova(work / "salova", enc_dir, None, num_latents=8)
    models = load_models(str(ckpt), device="cpu")
    probe = work / "probe.mp4"
    probe.write_bytes(b"\0" * 4096)  # stands in for the asked video: only its size/mtime/hash are checked

    rows = []
    for n in sizes:
        root = work / f"lib{n}" / "index"
        t0 = time.perf_counter()
        build_index(root, models, n, args.segments, args.frames, probe)
        build_s = time.perf_counter() - t0
        with Session(root, model=str(ckpt), device="cpu", answer=False, progress=False) as asker:
            search_s = timed(lambda a=asker: a.search("a dog catching a frisbee", limit=10), args.repeat)
            ask_s = timed(lambda a=asker: a.ask(probe, "when does the dog jump?"), args.repeat)
        rows.append({"videos": n, "segments": n * args.segments, "build_s": round(build_s, 2),
                     "search_ms": round(1000 * search_s, 2), "ask_ms": round(1000 * ask_s, 2)})
        print(f"{n:>5} videos  search {1000 * search_s:7.2f} ms  ask {1000 * ask_s:7.2f} ms  "
              f"(index built in {build_s:.1f}s)", file=sys.stderr)
    base, top = rows[0], rows[-1]
    ratios = {"search": round(top["search_ms"] / base["search_ms"], 2), "ask": round(top["ask_ms"] / base["ask_ms"], 2)}
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "segments_per_video": args.segments, "frames_per_segment": args.frames, "width": args.width,
              "rows": rows, f"ratio_{top['videos']}_over_{base['videos']}": ratios}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"ratio {top['videos']}/{base['videos']} videos: search {ratios['search']}x, ask {ratios['ask']}x")


if __name__ == "__main__":
    main()
