"""Does `salova train` learn? The synthetic needle experiment (training/synthetic_needle.py), run and reported.

Runs the experiment for each ``--seeds`` (each a fresh data set, model and training run), then seed 0 a second
time to check that a rerun gives the same weights and log (bit for bit), and writes the "Training: synthetic
needle retrieval" section of docs/benchmarks.md from what it measured.

    python benchmarks/bench_needle.py                 # seeds 0 and 1 + the rerun check (~10 min on 2 cores)
    python benchmarks/bench_needle.py --quick         # seed 0, a small split; prints only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_info, machine_line, md_table, record_run, section_markers, write_docs_section


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_seed(seed: int, extra: list[str]) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    import synthetic_needle

    with tempfile.TemporaryDirectory(prefix="salova-needle-bench-") as work:
        report = synthetic_needle.main(["--seed", str(seed), "--work", work, *extra])
        trained = Path(work) / "trained"
        report["weights_sha256"] = digest(trained / "model.safetensors")
        log = [json.loads(x) for x in (trained / "train_log.jsonl").read_text().splitlines()]
        # wall-clock fields differ between identical runs; the learning curve must not
        report["log_sha256"] = hashlib.sha256(
            json.dumps([{k: v for k, v in e.items() if "time" not in k and not k.endswith("_s")} for e in log]).encode()
        ).hexdigest()[:16]
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--quick", action="store_true", help="seed 0 on a small split, no rerun check, no docs")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    extra = ["--train-videos", "24", "--test-videos", "12", "--epochs", "10"] if args.quick else []
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    t0, load_before = time.perf_counter(), os.getloadavg()
    runs = [run_seed(s, extra) for s in seeds]
    rerun = None if args.quick else run_seed(seeds[0], extra)
    if rerun is not None:
        first = runs[0]
        rerun["identical_weights"] = rerun["weights_sha256"] == first["weights_sha256"]
        rerun["identical_log"] = rerun["log_sha256"] == first["log_sha256"]
    command = "python benchmarks/bench_needle.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command.strip(), "seeds": seeds, "machine": machine_info("cpu"), "runs": runs, "rerun": rerun,
              "seconds": round(time.perf_counter() - t0, 1), "load_before": load_before, "load_after": os.getloadavg()}
    record_run("needle", report)
    print(json.dumps(report, indent=2, default=str))
    if not args.quick and not args.no_docs:
        write_docs_section(*section_markers("bench_needle", "benchmarks/bench_needle.py"), docs_section(report))
    return 0


def docs_section(report: dict) -> str:
    runs, rerun = report["runs"], report["rerun"]
    r0 = runs[0]
    rows = [[f"seed {i}", f"{r['held_out_top1_before']:.3f}", f"**{r['held_out_top1_after']:.3f}**",
             f"{r['sim_loss_first']:.3f} -> {r['sim_loss_last']:.3f}", f"{r['steps']}", f"{r['seconds_train']:.0f} s"]
            for i, r in zip(report["seeds"], runs, strict=True)]
    curve = ", ".join(f"{x:.2f}" for x in r0["sim_loss_every_10_steps"])
    same = (f"a second run of seed 0 gave {'the same' if rerun['identical_weights'] else 'DIFFERENT'} weights "
            f"(sha256 {rerun['weights_sha256']}) and {'the same' if rerun['identical_log'] else 'a DIFFERENT'} "
            f"loss log") if rerun else "no rerun check in this run"
    load = " ".join(f"{x:.2f}" for x in report["load_before"])
    return f"""## Training: synthetic needle retrieval

Does `salova train` learn, not just run? `training/synthetic_needle.py` builds a long-video retrieval task and
trains on it with the library's own loop (`salova.train.train`, DeepSpeed ZeRO-2, stage-1 preset: lr 1e-3,
AdamW, 3% warm-up + cosine) over a frozen tiny random CLIP; held-out top-1 = the router's best segment is
the needle (chance 1/{r0['segments']} = {r0['chance']:.3f}). {r0['train_videos']} training and
{r0['test_videos']} held-out videos (real H.264 files), {r0['segments']} segments each, {r0['epochs']} epochs.

Command: `{report['command']}` ({time.strftime('%Y-%m-%d')}, {report['seconds']:.0f} s in all).
Machine: {machine_line(report['machine'])}. Load average before: {load}.

{md_table(["run", "held-out top-1 before", "after", "similarity loss first -> last", "steps", "train time"], rows)}

Similarity loss every 10 steps (seed {report['seeds'][0]}): {curve}. Reproducibility: {same}.
Raw figures of every run: `benchmarks/results/needle.jsonl`. `tests/train/` runs a smaller split through the
`salova train` CLI in the default test run.
"""


if __name__ == "__main__":
    sys.exit(main())
