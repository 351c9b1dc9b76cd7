"""Usage mistakes, through the installed `salova` console script: one message, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_helpers import cli_env

SALOVA = Path(sys.executable).with_name("salova")


def run_salova(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if not SALOVA.exists():
        pytest.fail(f"the console script is not installed beside {sys.executable}: run the README's set-up")
    env = cli_env()
    env["SALOVA_INDEX"] = str(tmp_path / "idx")
    env.pop("SALOVA_DEBUG", None)
    return subprocess.run([str(SALOVA), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["index", "videos", "--bogus"], "No such option: --bogus"),
        (["ask", "v.mp4", "q", "--top-kk", "3"], "Possible options: --top-k"),
        (["nosuch"], "No such command 'nosuch'"),
        (["indx", "videos"], "Did you mean 'index'?"),
        (["search"], "Missing argument"),
        (["index", "videos", "--fps"], "requires an argument"),
        (["ask", "v.mp4", "q", "--top-k", "abc"], "Invalid value for '--top-k'"),
        (["index", "videos", "--batch-size", "many"], "Invalid value for '--batch-size'"),
        (["ask", "v.mp4", "q", "--top-k", "0"], "salova: error: --top-k must be >= 1"),
        (["index", "videos", "--fps", "-1"], "salova: error: --fps must be in (0, 30]"),
        (["index", "videos", "--max-segment", "0"], "salova: error: --max-segment must be > 0"),
        (["index", "videos", "--backend", "vlc"], "salova: error: --backend 'vlc'"),
        (["index", "videos", "--shard", "1of4"], "salova: error: --shard '1of4'"),
    ],
)
def test_usage_mistake_is_one_message_and_exit_2(tmp_path, args, needle):
    run = run_salova(*args, tmp_path=tmp_path)
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert needle in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert not (tmp_path / "idx").exists(), "a usage mistake must not create or touch an index"


def test_usage_mistake_shows_the_traceback_only_with_salova_debug(tmp_path):
    """SALOVA_DEBUG=1 is for salova's own errors; click's usage message stays a message."""
    env = cli_env()
    env["SALOVA_DEBUG"] = "1"
    run = subprocess.run([str(SALOVA), "nosuch"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr


def test_help_and_version_exit_0(tmp_path):
    for args in (["--help"], ["index", "--help"], ["--version"]):
        run = run_salova(*args, tmp_path=tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.stdout
