"""Models load by hub id from the local Hugging Face cache with ``HF_HUB_OFFLINE=1`` (README: "offline use
works from the local cache").

A fake cache is laid out as ``huggingface_hub`` writes one (``models--ORG--NAME/snapshots/<commit>/...`` and
``refs/main``) and the real CLI runs in a subprocess with ``HF_HOME`` / ``HF_HUB_CACHE`` pointing at it, so
the hub library reads them at import, as it would for a user.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from salova.testing.videos import make_video
from tests.cli_helpers import cli_env

COMMIT = "0123456789abcdef0123456789abcdef01234567"
ENCODER_ID, SALOVA_ID = "tiny-org/clip", "tiny-org/salova"


def cache_model(hub, repo_id: str, src) -> None:
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(src, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory, clip_dir, salova_retrieval_dir):
    """A local cache holding a CLIP encoder and a SALOVA checkpoint whose config names that encoder by hub id."""
    home = tmp_path_factory.mktemp("hf_home")
    hub = home / "hub"
    cache_model(hub, ENCODER_ID, clip_dir)
    cache_model(hub, SALOVA_ID, salova_retrieval_dir)
    config = hub / f"models--{SALOVA_ID.replace('/', '--')}" / "snapshots" / COMMIT / "config.json"
    cfg = json.loads(config.read_text())
    cfg["encoder"] = ENCODER_ID  # not a local path: the encoder too must come from the cache
    config.write_text(json.dumps(cfg))
    return home


def salova(home, *args) -> subprocess.CompletedProcess:
    env = {**cli_env(), "HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}
    env.pop("TRANSFORMERS_CACHE", None)
    return subprocess.run([sys.executable, "-m", "salova_cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def test_checkpoint_and_encoder_load_by_hub_id_from_the_offline_cache(tmp_path, hf_home):
    video = make_video(tmp_path / "v.mp4", [(2.0, (230, 30, 30)), (2.0, "noise")], fps=15, size=(96, 64))
    index = tmp_path / "idx"
    run = salova(hf_home, "index", video.path, "--index", index, "--model", SALOVA_ID, "--device", "cpu", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["indexed"] == 1
    # `ask` without --model uses the checkpoint the index was built with: a hub id, found in the cache again
    asked = salova(hf_home, "ask", video.path, "a red frame", "--index", index, "--device", "cpu", "--json")
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert result["mode"] == "router" and result["model"] == SALOVA_ID
    assert [m["start_s"] for m in sorted(result["moments"], key=lambda m: m["start_s"])] == [0.0, 2.0]


def test_a_hub_id_missing_from_the_offline_cache_is_one_clear_line(tmp_path, hf_home):
    """The same command against an empty cache fails at once, naming the model: it was the cache that served."""
    video = make_video(tmp_path / "v.mp4", [(2.0, "noise")], fps=15, size=(96, 64))
    empty = tmp_path / "empty_hf_home"
    (empty / "hub").mkdir(parents=True)
    run = salova(empty, "index", video.path, "--index", tmp_path / "idx", "--encoder", ENCODER_ID, "--device", "cpu")
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1, run.stderr
    assert lines[0].startswith("salova: error: ") and ENCODER_ID in lines[0] and "Traceback" not in run.stderr
