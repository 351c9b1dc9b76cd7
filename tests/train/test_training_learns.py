"""`salova train`, run as users run it, learns: held-out needle retrieval goes from chance to well above it.

The synthetic needle task of training/synthetic_needle.py on a small split (32 training videos, 40 epochs,
about a minute on 2 CPU cores): each video has 6 segments of distinct looks; the question names the needle's
look. Training goes through the installed `salova train` command; the held-out metric is the script's own
(the router's best segment is the needle). docs/benchmarks.md has the full-size run (bench_needle.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from salova.tiny import make_tiny_encoder, make_tiny_salova
from training.synthetic_needle import make_split, retrieval_accuracy

SALOVA = Path(sys.executable).with_name("salova")


def test_salova_train_learns_needle_retrieval_on_held_out_videos(tmp_path):
    rng = np.random.default_rng(0)
    train_data = make_split(tmp_path, "train", 32, 6, rng)
    test_data = make_split(tmp_path, "test", 16, 6, rng)
    encoder = make_tiny_encoder(tmp_path / "encoder", "clip", seed=0)
    init = make_tiny_salova(tmp_path / "init", encoder, None, seed=0)
    before = retrieval_accuracy(init, test_data)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "trained"
    cmd = [str(SALOVA), "train", "--stage", "1", "--data", str(train_data), "--init", str(init), "-o", str(out),
           "--lr", "1e-3", "--global-batch", "8", "--micro-batch", "8", "--epochs", "40", "--seed", "0",
           "--num-workers", "0", "--save-every", "0", "--json",
           "--set", "router_query=question", "--set", "in_batch_negatives=false", "--set", "feature_cache=true"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout)
    assert summary["steps"] == 160

    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(e["sim_loss"] is not None for e in log)
    assert np.mean([e["sim_loss"] for e in log[-10:]]) < 0.5 * np.mean([e["sim_loss"] for e in log[:10]])

    after = retrieval_accuracy(out, test_data)
    chance = 1 / 6
    assert before < 0.4, before  # an untrained router is near chance
    assert after >= 0.6 and after >= before + 0.4, (before, after)  # measured 0.125 -> 0.81 (chance 0.17)
    assert after > 3 * chance
