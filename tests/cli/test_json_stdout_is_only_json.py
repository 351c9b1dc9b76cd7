"""Scripts parse `--json` output: stdout carries the JSON document and nothing else (no library chatter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from salova.testing.videos import make_video
from salova.tiny import make_tiny_encoder
from tests.cli_helpers import cli_env

SALOVA = Path(sys.executable).with_name("salova")


def test_index_and_ask_json_stdout_parses_as_one_document(tmp_path):
    video = make_video(tmp_path / "v" / "a.mp4", [(2.0, (220, 30, 30)), (2.0, (30, 30, 220))], fps=10).path
    encoder = make_tiny_encoder(tmp_path / "clip", "clip")
    env = cli_env()
    env.pop("DS_ACCELERATOR", None)  # the variable salova sets itself on a CPU machine
    index = ["--index", str(tmp_path / "idx")]
    for args in (["index", str(video), "--encoder", str(encoder), *index, "--json"],
                 ["ask", str(video), "red", *index, "--json"],
                 ["search", "blue", *index, "--json"]):
        run = subprocess.run([str(SALOVA), *args], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        json.loads(run.stdout)  # raises on any extra line
