"""Two processes under torchrun train the same weights as one process at the same global batch.

One process with global batch 2 and micro-batch 1 accumulates two micro-batches per step; two processes
(gloo on CPU) take one micro-batch each and all-reduce. Same seed, same samples per step (the recipe deals
a seeded permutation out rank by rank) and no dropout, so the saved weights must agree to float tolerance.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
from safetensors.torch import load_file

from salova.tiny import make_tiny_encoder, make_tiny_salova
from tests.cli_helpers import ROOT
from training.synthetic_needle import make_split


def _train(out, data, init, nproc: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    train = ["-m", "salova_cli", "train", "--stage", "1", "--data", str(data), "--init", str(init), "-o", str(out),
             "--global-batch", "2", "--micro-batch", "1", "--max-steps", "3", "--num-workers", "0", "--lr", "1e-3",
             "--seed", "0", "--set", "warmup_ratio=0", "--set", "in_batch_negatives=false", "--set",
             "router_query=question", "--quiet"]
    if nproc == 1:
        cmd = [sys.executable, *train]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *train]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_processes_train_the_same_weights_as_one_at_equal_global_batch(tmp_path):
    data = make_split(tmp_path, "train", 6, 4, np.random.default_rng(0))
    encoder = make_tiny_encoder(tmp_path / "encoder", "clip", seed=0)
    # Position dropout is random per process: off, so that the two runs compute the same thing.
    init = make_tiny_salova(tmp_path / "init", encoder, None, seed=0, router={"position_dropout": 0.0})
    _train(tmp_path / "one", data, init, 1)
    _train(tmp_path / "two", data, init, 2)
    one = load_file(str(tmp_path / "one" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "model.safetensors"))
    start = load_file(str(init / "model.safetensors"))
    assert one.keys() == two.keys()
    moved = max(float((one[k].float() - start[k].float()).abs().max()) for k in one)
    assert moved > 1e-3, "training changed nothing: the comparison would be empty"
    for k in one:
        torch.testing.assert_close(two[k].float(), one[k].float(), rtol=1e-4, atol=1e-5, msg=k)
