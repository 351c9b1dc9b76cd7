"""Training records: LLaVA-style JSON, SceneWalk JSONL and SceneWalk parquet readers, and router labels.

Every format becomes ``Sample``s: one video (or image: a one-frame video with one segment), its (question,
answer) exchanges, optionally its scenes, and the router queries with what each should retrieve.

Two kinds of router supervision (``Sample.queries``):

- **SceneWalk descriptions** (stage 1.5): a record holds one human/gpt pair per scene; every gpt
  description is a router query with its own label row over the scenes, from the description x scene score
  matrices when the data has them (``v2t``/``t2t``: per-scene score sequences, the parquet release's
  ``v2t_score``/``t2t_score``, or the reference code's ``lb_sim``/``sen_sim``), else description i is
  scene i's (a sound positive: the reference labels its own scene positive through ``t2t`` = 1 on the
  diagonal).
- **One question** (other records): the first human turn (or its answer, ``router_query``) against the
  segments, labelled by per-scene scalar scores when present, else unknown.

Bad records never stop training: malformed lines and samples whose media is missing are skipped and counted
(``ReadReport``). A data file that is missing, or has no usable sample at all, is a ``TrainingDataError``.
"""


from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from salova.errors import TrainingDataError

logger = logging.getLogger("salova.train.data")  # the name the trainer quiets on ranks > 0

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_MEDIA_TOKEN = re.compile(r"\s*<(image|video)>\s*")
_EXAMPLES_LOGGED = 5  # per reason, so a bad million-line file does not flood the log
_PARQUET_BATCH = 10_000  # rows fetched at a time from a parquet file


@dataclass(frozen=True)
class Scene:
    """One annotated segment: times (seconds) or frame numbers, and optional relevance scores."""

    start_s: float | None = None
    end_s: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    v2t: float | None = None  # video-to-text similarity of the segment and the sample's one question
    t2t: float | None = None  # text-to-text similarity of the segment's caption and the sample's one question


@dataclass(frozen=True)
class RouterQuery:
    """A text the router learns to score segments against, and the data on which segments it means."""

    text: str
    v2t: tuple[float, ...] | None = None  # one video-to-text score per scene
    t2t: tuple[float, ...] | None = None  # one text-to-text score per scene
    scene: int | None = None  # the scene this text describes (without scores: the one positive)


class FirstExchange:
    """``question`` and ``answer``: the first of a record's ``pairs`` (what one-question code reads)."""

    pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]

    @property
    def question(self) -> str:
        return self.pairs[0][0]

    @property
    def answer(self) -> str:
        return self.pairs[0][1]


@dataclass(frozen=True)
class Sample(FirstExchange):
    id: str
    media: Path  # absolute path of the video or image
    kind: str  # "video" or "image"
    pairs: tuple[tuple[str, str], ...]  # (question, answer) exchanges; <image>/<video> tokens removed
    scenes: tuple[Scene, ...] | None  # None: segment the video like `salova index`
    where: str  # "file:line" for messages
    queries: tuple[RouterQuery, ...] = ()  # SceneWalk descriptions, one per scene; (): one question


@dataclass
class ReadReport:
    """What reading the data files kept and skipped."""

    samples: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())


# ---------------------------------------------------------------------------------------- reading
def read_samples(
    paths: list[str | Path], video_root: str | Path | None = None, image_root: str | Path | None = None
) -> tuple[list[Sample], ReadReport]:
    """Read LLaVA-style ``.json`` lists, SceneWalk ``.jsonl`` files and SceneWalk ``.parquet`` files.

    Relative media paths resolve against ``video_root`` (videos) / ``image_root`` (images; default
    ``video_root``), else the data file's folder.
    """
    report = ReadReport()
    samples: list[Sample] = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            raise TrainingDataError(f"training data file not found: {path}")
        vroot = Path(video_root).expanduser() if video_root else path.parent
        iroot = Path(image_root).expanduser() if image_root else vroot
        records = _parquet_records(path) if path.suffix.lower() == ".parquet" else _records(path, report)
        for where, record in records:
            try:
                sample = parse_record(record, where, vroot, iroot)
            except ValueError as exc:
                _skip(report, "malformed", f"{where}: {exc}")
                continue
            if not sample.media.is_file():
                _skip(report, "missing media", f"{where}: {sample.media} not found")
                continue
            samples.append(sample)
    report.samples = len(samples)
    if report.total_skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(report.skipped.items()))
        logger.warning("training data: skipped %d record(s) (%s); kept %d", report.total_skipped, reasons,
                       len(samples))
    if not samples:
        files = ", ".join(str(p) for p in paths)
        detail = f" ({', '.join(f'{n} {r}' for r, n in report.skipped.items())})" if report.skipped else ""
        raise TrainingDataError(f"no usable training samples in {files}{detail}")
    return samples, report


def _skip(report: ReadReport, reason: str, message: str) -> None:
    report.skipped[reason] += 1
    if report.skipped[reason] <= _EXAMPLES_LOGGED:
        logger.warning("skipping %s", message)


def _records(path: Path, report: ReadReport):
    """(where, record) pairs: a .jsonl file line by line, anything else as one JSON list (or JSONL fallback)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSONL under a .json name
        if isinstance(data, list):
            for i, record in enumerate(data):
                yield f"{path.name}[{i}]", record
            return
        if isinstance(data, dict):
            yield f"{path.name}[0]", data
            return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            _skip(report, "malformed", f"{path.name}:{n}: not JSON ({exc.msg})")
            continue
        yield f"{path.name}:{n}", record


def _parquet_records(path: Path):
    """SceneWalk's parquet release, one row per clip, as one record per video.

    A row holds one clip: ``time_stamp`` (start/end frame and time), its description (``conversations``) and
    ``v2t_score``/``t2t_score`` sequences: that description's scores against every clip of its video, in time
    order. Rows group by ``video`` (else ``id``) into a record with the clips as scenes, in time order, and
    the sequences as the description x scene matrices. Without a ``video`` column the file is ``<id>.mp4``.
    """
    import duckdb

    try:
        con = duckdb.connect()
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
    except duckdb.Error as exc:
        raise TrainingDataError(f"{path}: cannot read parquet ({str(exc).splitlines()[0]})") from None
    columns = [d[0] for d in cur.description]
    videos: dict[str, list[dict]] = {}
    while rows := cur.fetchmany(_PARQUET_BATCH):
        for row in rows:
            rec = dict(zip(columns, row, strict=True))
            key = rec.get("video") or rec.get("id")
            videos.setdefault(str(key), []).append(rec)
    con.close()
    for key, clips in videos.items():
        yield f"{path.name}[{key}]", _video_record(key, clips)


def _video_record(key: str, clips: list[dict]) -> dict:
    """Per-clip parquet rows of one video -> a SceneWalk record with matrices (``v2t``/``t2t``, rows = clips)."""
    scenes = []
    for clip in clips:
        ts = clip.get("time_stamp") or {}
        if not isinstance(ts, dict):
            ts = {}
        scenes.append({"start_time": _clock(ts.get("start_time")), "end_time": _clock(ts.get("end_time")),
                       "start_frame": ts.get("start_frame"), "end_frame": ts.get("end_frame")})
    order = sorted(range(len(clips)), key=lambda i: _start_key(scenes[i]))
    conversations = []
    for i in order:
        conversations += list(clips[i].get("conversations") or [])
    first = clips[0]
    return {
        "id": key, "video": first.get("video") or f"{key}.mp4", "clip_num": len(clips),
        "scenes": [scenes[i] for i in order], "conversations": conversations,
        "v2t": [clips[i].get("v2t_score") for i in order], "t2t": [clips[i].get("t2t_score") for i in order],
    }


def _clock(value) -> float | None:
    """Seconds from a number or an "H:MM:SS.fff" / "MM:SS" / "SS" string (None if unreadable)."""
    if value is None or isinstance(value, int | float):
        return value
    try:
        seconds = 0.0
        for part in str(value).strip().split(":"):
            seconds = seconds * 60 + float(part)
        return seconds
    except ValueError:
        return None


def _start_key(scene: dict) -> float:
    for key in ("start_time", "start_frame"):
        if isinstance(scene.get(key), int | float):
            return float(scene[key])
    return 0.0


def parse_record(record: dict, where: str, video_root: Path, image_root: Path) -> Sample:
    """One LLaVA/SceneWalk record -> Sample; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    video, image = record.get("video"), record.get("image")
    if isinstance(image, list):  # LLaVA multi-image records: SALOVA takes one picture
        image = image[0] if image else None
    if video:
        media, kind = _resolve(video, video_root), "video"
    elif image:
        media, kind = _resolve(image, image_root), "image"
    else:
        raise ValueError("no 'video' or 'image' field")
    if kind == "video" and media.suffix.lower() in IMAGE_SUFFIXES:
        kind = "image"
    pairs = exchanges(record.get("conversations"))
    scenes = parse_scenes(record.get("scenes")) if kind == "video" else None
    queries = description_queries(record, scenes, pairs) if scenes else ()
    return Sample(str(record.get("id", where)), media, kind, pairs, scenes, where, queries)


def _resolve(name, root: Path) -> Path:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"bad media path {name!r}")
    path = Path(name).expanduser()
    return path if path.is_absolute() else root / path


def exchanges(conversations) -> tuple[tuple[str, str], ...]:
    """Every human turn followed by a gpt turn, as (question, answer) pairs in order."""
    if not isinstance(conversations, list) or not conversations:
        raise ValueError("no 'conversations' list")
    pairs = []
    for i, turn in enumerate(conversations[:-1]):
        nxt = conversations[i + 1]
        if not (isinstance(turn, dict) and isinstance(nxt, dict)):
            raise ValueError("a conversation turn is not an object")
        if turn.get("from") in ("human", "user") and nxt.get("from") in ("gpt", "assistant"):
            question = _MEDIA_TOKEN.sub(" ", str(turn.get("value", ""))).strip()
            answer = str(nxt.get("value", "")).strip()
            if not answer:
                raise ValueError(f"empty gpt answer (turn {i + 1})")
            pairs.append((question, answer))
    if not pairs:
        raise ValueError("no human turn followed by a gpt turn")
    return tuple(pairs)


def description_queries(
    record: dict, scenes: tuple[Scene, ...], pairs: tuple[tuple[str, str], ...]
) -> tuple[RouterQuery, ...]:
    """SceneWalk: one router query per scene description, with its score rows; () for a one-question record.

    A record is SceneWalk-style when it carries description x scene matrices (``v2t``/``t2t``, or the
    reference code's ``lb_sim``/``sen_sim``), or per-scene score sequences, or exactly one exchange per scene.
    """
    n = len(scenes)
    v2t = _matrix(record, ("v2t", "lb_sim"), n)
    t2t = _matrix(record, ("t2t", "sen_sim"), n)
    raw = record.get("scenes") or []
    if v2t is None and t2t is None and any(isinstance(s.get(k), list) for s in raw for k in ("v2t_score",
                                                                                          "t2t_score")):
        v2t = _matrix({"v": [s.get("v2t_score") for s in raw]}, ("v",), n)
        t2t = _matrix({"t": [s.get("t2t_score") for s in raw]}, ("t",), n)
    if v2t is None and t2t is None and len(pairs) != n:
        return ()  # one question over the video (scores, if any, are per-scene scalars)
    if len(pairs) != n:
        raise ValueError(f"{len(pairs)} description(s) for {n} scene(s): SceneWalk pairs one with each scene")
    return tuple(
        RouterQuery(answer, v2t[i] if v2t else None, t2t[i] if t2t else None, scene=i)
        for i, (_, answer) in enumerate(pairs)
    )


def _matrix(record: dict, keys: tuple[str, ...], n: int) -> tuple[tuple[float, ...], ...] | None:
    """An n x n description x scene score matrix under the first present key (rows may be null: no scores)."""
    key = next((k for k in keys if record.get(k) is not None), None)
    if key is None:
        return None
    rows = record[key]
    if not isinstance(rows, list) or len(rows) != n:
        raise ValueError(f"'{key}' must hold one row per scene ({n})")
    if all(r is None for r in rows):
        return None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            raise ValueError(f"'{key}' row {i} must hold one score per scene ({n})")
        out.append(tuple(_num({key: v}, key) for v in row))
    return tuple(out)


def parse_scenes(raw) -> tuple[Scene, ...] | None:
    """SceneWalk ``scenes``: start/end time (s) or frame per scene, optional scalar v2t_score/t2t_score."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        raise ValueError("'scenes' must be a non-empty list")
    scenes = []
    for i, s in enumerate(raw):
        if not isinstance(s, dict):
            raise ValueError(f"scene {i} is not an object")
        start_s, end_s = _num(s, "start_time"), _num(s, "end_time")
        start_f, end_f = _num(s, "start_frame"), _num(s, "end_frame")
        has_time = start_s is not None and end_s is not None
        has_frames = start_f is not None and end_f is not None
        if not (has_time or has_frames):
            raise ValueError(f"scene {i} has neither start_time/end_time nor start_frame/end_frame")
        if (has_time and end_s < start_s) or (has_frames and end_f < start_f):
            raise ValueError(f"scene {i} ends before it starts")
        scenes.append(Scene(
            start_s if has_time else None, end_s if has_time else None,
            int(start_f) if has_frames else None, int(end_f) if has_frames else None,
            _scalar(s, "v2t_score"), _scalar(s, "t2t_score"),
        ))
    return tuple(scenes)


def _num(d: dict, key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{key}={value!r} is not finite")
    return number


def _scalar(d: dict, key: str) -> float | None:
    """A per-scene score; a sequence is that scene's description row (``description_queries``), not a scalar."""
    return None if isinstance(d.get(key), list) else _num(d, key)


# ---------------------------------------------------------------------------------------- labels
def router_labels(
    v2t, t2t, v2t_threshold: float = 0.18, t2t_threshold: float = 0.8
) -> list[bool] | None:
    """One text's relevant segments from its per-segment scores; None when it has no score at all.

    Paper: positive when v2t > 0.18 or t2t > 0.8 (the reference code's stage 1.5: 0.21 / 0.83). Every
    positive is a loss target (the reference caps only the segments fed to the LLM, see ``top_k``). A text
    whose scores pass no threshold gets its best-v2t segment (else best t2t) as the single positive.
    ``v2t``/``t2t``: sequences of float or None, one per segment (or None).
    """
    n = len(v2t) if v2t is not None else len(t2t) if t2t is not None else 0
    v = [x if x is not None else -math.inf for x in (v2t or [None] * n)]
    t = [x if x is not None else -math.inf for x in (t2t or [None] * n)]
    if n == 0 or all(x == -math.inf for x in v + t):
        return None
    positive = [a > v2t_threshold or b > t2t_threshold for a, b in zip(v, t, strict=True)]
    if not any(positive):
        best = int(np.argmax(v if any(x > -math.inf for x in v) else t))
        positive[best] = True
    return positive


def sample_labels(s: Sample, v2t_threshold: float = 0.18, t2t_threshold: float = 0.8) -> list[list[bool] | None]:
    """Label rows of a sample: one per SceneWalk description, else one for its question (None: unknown)."""
    if s.kind == "image":
        return [[True]]
    if s.queries:
        n = len(s.scenes)
        rows = []
        for q in s.queries:
            row = router_labels(q.v2t, q.t2t, v2t_threshold, t2t_threshold)
            rows.append(row if row is not None else [j == q.scene for j in range(n)])
        return rows
    if s.scenes is None:
        return [None]
    return [router_labels([x.v2t for x in s.scenes], [x.t2t for x in s.scenes], v2t_threshold, t2t_threshold)]
