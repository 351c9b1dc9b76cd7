"""Which files to index: discovery, the cheap change check, and sharding across processes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from salova.errors import UsageError

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mkv",
        ".mov",
        ".avi",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".ogv",
        ".vob",
        ".mxf",
    }
)
HASH_CHUNK = 1 << 20  # content hash: size + head, middle and tail MiB (cheap on multi-GB files)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Video files under ``paths`` (files as given; folders recursively by extension), sorted, unique.

    Symlinked folders are followed once (loops are cut); a missing argument is a usage error.
    """
    found: dict[str, Path] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise UsageError(f"{raw}: no such file or directory")
        if p.is_file():
            found.setdefault(str(p.resolve()), p.resolve())
            continue
        seen_dirs: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(p, followlinks=True):
            st = os.stat(root)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:  # a symlink loop or a folder reached twice
                dirs[:] = []
                continue
            seen_dirs.add(key)
            dirs.sort()
            for name in sorted(files):
                if Path(name).suffix.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    f = Path(root, name)
                    if f.is_file():
                        found.setdefault(str(f.resolve()), f.resolve())
    return sorted(found.values())


def content_hash(path: Path, size: int) -> str:
    """sha256 over the size and the first, middle and last MiB: detects edits without reading GBs."""
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - HASH_CHUNK // 2), max(0, size - HASH_CHUNK)}):
            f.seek(offset)
            h.update(f.read(HASH_CHUNK))
    return h.hexdigest()[:32]


def full_hash(path: Path) -> str:
    """sha256 of the whole file (``--verify``): what ``content_hash``'s sampled 3 MiB can miss."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK * 8):
            h.update(chunk)
    return h.hexdigest()[:32]


def is_unchanged(rec, path: Path, st: os.stat_result, verify: bool = False) -> bool:
    """An indexed record still describes the file: same size, and same mtime or same content hash.

    The cheap check misses an edit that keeps the size and the mtime (or resets it) and touches no byte of
    the three sampled MiB, e.g. a few frames re-encoded in place mid-file. ``verify`` compares the hash of
    the whole file instead (a record without one counts as changed).
    """
    if rec is None or rec.status != "indexed" or rec.size != st.st_size:
        return False
    if verify:
        return rec.full_hash is not None and rec.full_hash == full_hash(path)
    return rec.mtime_ns == st.st_mtime_ns or rec.content_hash == content_hash(path, st.st_size)


# Settings that shape a video's segments and vectors; a video made with others is re-indexed.
SETTING_KEYS = ("fps", "max_segment_s", "model")


def settings_json(fps: float, max_segment_s: float, encoder: str, model_digest: str) -> str:
    """What `videos.settings` records: the sampling rate, the split length and the model that made the rows."""
    return json.dumps({"fps": float(fps), "max_segment_s": float(max_segment_s), "encoder": encoder,
                       "model": model_digest}, sort_keys=True)


def settings_differ(rec, settings: str, keys: tuple[str, ...] = SETTING_KEYS) -> list[str]:
    """The settings (of SETTING_KEYS) in which `rec` was made differently; none for rows from before salova
    recorded them (NULL: assumed the same, so an upgrade does not re-index a whole library)."""
    if rec is None or not rec.settings:
        return []
    try:
        old, new = json.loads(rec.settings), json.loads(settings)
    except ValueError:
        return list(keys)
    return [k for k in keys if old.get(k) != new.get(k)]


def shard_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) from a torchrun/deepspeed launcher, if set and > 1."""
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world > 1 else None


def shard_dir(index_dir: Path, shard: tuple[int, int]) -> Path:
    return index_dir / "shards" / f"{shard[0]}-of-{shard[1]}"
