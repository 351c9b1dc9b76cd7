"""What every evaluation shares: a resumable JSONL of per-item results, the run's settings, JSON and tables."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from salova.errors import UsageError, option_problem


class ResultLog:
    """Per-item results, one JSON object per line, keyed by ``key``; appended and flushed item by item, so a run
    killed at any point keeps every finished item. ``resume=False`` starts the file afresh."""

    def __init__(self, path: Path, key: str, resume: bool, field: str = "output"):
        self.path, self.key = Path(path), key
        self.done: dict[str, dict] = {}
        if resume and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash: that item is simply redone
                if isinstance(rec, dict) and key in rec:
                    self.done[str(rec[key])] = rec
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # rewrite the kept lines (drops a torn last line), then append
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise option_problem(field, f"{self.path}: cannot write ({exc.strerror})") from None
        for rec in self.done.values():
            self._handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._handle.flush()

    def __contains__(self, item_key) -> bool:
        return str(item_key) in self.done

    def add(self, record: dict) -> None:
        self.done[str(record[self.key])] = record
        self._handle.write(json.dumps(record, ensure_ascii=False, default=_plain) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def records(self) -> list[dict]:
        return list(self.done.values())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _plain(obj):
    """numpy scalars and paths in JSON."""
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def check_settings(path: Path, settings: dict, resume: bool) -> None:
    """Record a run's settings next to its results; resuming with different settings is an error (the results
    would mix two experiments)."""
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if changed:
            raise UsageError(f"cannot resume {path.parent}: it was run with other settings ({', '.join(changed)}); "
                             "use another output or drop --resume to start over")
        return
    write_json(path, settings)


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_plain) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def format_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A plain-text table; floats printed with 3 decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              for r in cells]
    return "\n".join(lines)
