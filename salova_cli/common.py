"""Options shared by several commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from salova.errors import UsageError

# Library option fields whose flag is not simply "--" + the field with dashes.
_FLAGS = {"max_segment_s": "--max-segment", "as_json": "--json", "questions_file": "--questions",
          "fmt": "--format", "speech": "--no-speech"}


def flag_name(field: str) -> str:
    """The command-line flag of a library option field (``max_segment_s`` -> ``--max-segment``)."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


INDEX_HELP = "Index directory (default: $SALOVA_INDEX or the user data dir)."
DEVICE_HELP = "auto, cpu, cuda or cuda:N."
CHANNELS_HELP = "Channels that score segments: visual, speech or visual,speech (default: all the index has)."


def index_dir(value: Path | None) -> Path:
    if value is not None:
        return Path(value).expanduser()
    from salova.store.records import default_index_dir

    return default_index_dir()


def show_progress(quiet: bool, as_json: bool) -> bool:
    """Progress bars only on an interactive terminal and never with --quiet/--json."""
    return not quiet and not as_json and sys.stderr.isatty()


def print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise UsageError(f"--shard {value!r}: expected I/N, e.g. 0/4") from None
    return i, n
