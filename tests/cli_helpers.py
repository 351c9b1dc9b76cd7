"""Running the real `salova` CLI, in-process (fast) or as a subprocess (kills, concurrency)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def cli(capsys, *args) -> Run:
    """Run `salova ARGS` in this process and capture its output."""
    from salova_cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    return env


def cli_process(*args, **kw) -> subprocess.Popen:
    """Start `python -m salova_cli ARGS` as a subprocess."""
    return subprocess.Popen([sys.executable, "-m", "salova_cli", *map(str, args)], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def segments_table(index: Path) -> list[tuple]:
    """(path, idx, start_s, end_s, start_frame, end_frame) of every indexed segment, via plain SQL."""
    con = duckdb.connect(str(index / "index.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT v.path, s.idx, s.start_s, s.end_s, s.start_frame, s.end_frame FROM segments s "
            "JOIN videos v ON v.id = s.video_id ORDER BY v.path, s.idx"
        ).fetchall()
    finally:
        con.close()
