"""Benchmark videos: find a benchmark's video ids in a folder, index them once before the questions."""

from __future__ import annotations

from pathlib import Path

from salova.errors import UsageError, option_problem
from salova.pipeline.files import discover
from salova.pipeline.run import IndexOptions, run_index
from salova.retrieval.session import Session


class VideoFolder:
    """Video files under a folder (recursively), found by id: the file name with or without its extension, or a
    relative path (``"videos/abc.mp4"``)."""

    def __init__(self, root: str | Path, field: str = "videos"):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise option_problem(field, f"{root}: no such folder")
        self.files = discover([self.root])
        self._by_name: dict[str, Path] = {}
        for f in self.files:
            self._by_name.setdefault(f.name, f)
            self._by_name.setdefault(f.stem, f)

    def find(self, video_id: str) -> Path | None:
        direct = self.root / video_id
        if direct.is_file():
            return direct.resolve()
        name = Path(video_id).name
        return self._by_name.get(name) or self._by_name.get(Path(name).stem)


def check_run_options(limit: int | None, resume: bool, predictions: Path | None, what: str) -> None:
    """``--limit`` and ``--resume`` of a benchmark run; ``what``: the per-item file's name in the message."""
    if limit is not None and limit < 1:
        raise option_problem("limit", f"must be >= 1, got {limit}")
    if resume and predictions is None:
        raise option_problem("resume", f"needs the {what} to resume from (--predictions FILE.jsonl)")


def locate_videos(ids: list[str], videos: str | Path, noun: str) -> dict[str, Path | None]:
    """Video id -> its file under ``videos`` (None: not there); a usage error when none of them is there."""
    folder = VideoFolder(videos)
    paths = {v: folder.find(v) for v in ids}
    missing = sorted(v for v, p in paths.items() if p is None)
    if len(missing) == len(paths):
        raise UsageError(f"none of {noun} is in {videos} (e.g. {missing[0]!r})")
    return paths


def index_videos(session: Session, paths: list[Path], progress: bool) -> dict[str, str]:
    """Index ``paths`` (new or changed ones only) into the session's index with its models, before any question.
    Returns ``{path: error}`` for the videos that could not be indexed."""
    if not paths:
        return {}
    session.close()  # its reader snapshot would be stale after this write
    opts = IndexOptions(index_dir=session.index_dir, progress=progress, shard_from_env=False,
                        **session.index_options)
    summary = run_index(sorted(set(paths)), opts, models=session.models)
    return {f["path"]: f["error"] for f in summary.failures}
