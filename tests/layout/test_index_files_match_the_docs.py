"""The index directory on disk is what docs/index-schema.md says it is.

The file names, element types and row shapes are read from the docs' "Directory layout" table (not from
salova's code); the files of real indexes are then read with plain numpy exactly as documented ("raw
little-endian C-order rows with no header"), and their sizes and contents checked.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from salova.testing.videos import make_video
from tests.cli_helpers import ROOT
from tests.index_reader import IndexStore, RawIndex
from tests.retrieval.library import run_cli

DOC = ROOT / "docs" / "index-schema.md"
EXT_DTYPES = {"f32": "<f4", "f16": "<f2", "f64": "<f8", "i8": "i1"}
# the shape symbols of the layout table, as the docs' `meta` table defines them
SYMBOLS = {"rows": "seg_rows", "frames": "frame_rows", "L": "latent_len", "d_joint": "d_joint", "d_route": "d_route",
           "d_lat": "d_lat"}


@dataclass(frozen=True)
class DocArray:
    stem: str  # e.g. "latents"
    exts: tuple[str, ...]  # e.g. ("f16", "i8")
    shape: tuple[str, ...]  # e.g. ("rows", "L", "d_lat")
    words: str  # the description


def documented_layout() -> tuple[dict[str, DocArray], list[str]]:
    """(array files by stem, every other documented name pattern) from the docs' "Directory layout" table."""
    text = DOC.read_text()
    table = text.split("## Directory layout", 1)[1].split("\n## ", 1)[0]
    arrays, others = {}, []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, what = line.strip("|").split("|", 1)
        names = re.findall(r"`([^`]+)`", names_cell)
        shape = re.search(r"`?\[([^\]]+)\]`?", what)
        array_names = [n for n in names if re.fullmatch(r"\w+\.g<G>\.\w+", n)]
        if shape and array_names:
            stem = array_names[0].split(".")[0]
            exts = [n.rsplit(".", 1)[1] for n in array_names] + [n[1:] for n in names if re.fullmatch(r"\.\w+", n)]
            arrays[stem] = DocArray(stem, tuple(exts), tuple(s.strip() for s in shape.group(1).split(" x ")), what)
        else:
            others += names
    return arrays, others


def test_the_docs_layout_table_parses_into_what_the_tests_rely_on():
    arrays, others = documented_layout()
    assert set(arrays) == {"joint", "routing", "latents", "latent_scales", "frame_times", "frame_joint"}
    assert arrays["latents"].shape == ("rows", "L", "d_lat") and arrays["latents"].exts == ("f16", "i8")
    assert arrays["frame_joint"].exts == ("f16", "f32") and arrays["frame_times"].shape == ("frames",)
    assert {"index.duckdb", "joint.s<S>.faiss", "routing.s<S>.faiss", ".lock", ".writer"} <= set(others)
    for doc in arrays.values():
        assert set(doc.shape) <= set(SYMBOLS), doc
        assert set(doc.exts) <= set(EXT_DTYPES), doc


def read_documented(root: Path, meta: dict, doc: DocArray, ext: str) -> np.ndarray:
    shape = tuple(int(meta[SYMBOLS[s]]) for s in doc.shape)
    path = root / f"{doc.stem}.g{meta['generation']}.{ext}"
    dtype = np.dtype(EXT_DTYPES[ext])
    assert path.stat().st_size == math.prod(shape) * dtype.itemsize, path.name  # exactly the committed rows
    return np.fromfile(path, dtype=dtype).reshape(shape)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, salova_retrieval_dir):
    """The same two videos indexed with a checkpoint twice: fp16 latents and int8 latents."""
    root = tmp_path_factory.mktemp("layout")
    videos = [
        make_video(root / "v" / "a.mp4", [(2.0, (230, 30, 30)), (3.0, "noise"), (2.0, "checker")], fps=15,
                   size=(96, 64)),
        make_video(root / "v" / "b.mp4", [(2.0, "bars"), (2.0, (30, 30, 230))], fps=15, size=(96, 64)),
    ]
    out = {}
    for dtype in ("fp16", "int8"):
        out[dtype] = root / f"idx_{dtype}"
        assert run_cli("index", root / "v", "--index", out[dtype], "--model", salova_retrieval_dir, "--device", "cpu",
                       "--latent-dtype", dtype, "--quiet") == 0
    return videos, out


def matches(name: str, pattern: str, meta: dict) -> bool:
    regex = re.escape(pattern).replace(re.escape("<G>"), meta["generation"]).replace(re.escape("<S>"), meta["seq"])
    return re.fullmatch(regex, name) is not None


@pytest.mark.parametrize("latent_dtype", ["fp16", "int8"])
def test_index_files_are_the_documented_raw_arrays(indexes, latent_dtype):
    videos, dirs = indexes
    root = dirs[latent_dtype]
    arrays, others = documented_layout()
    raw = RawIndex(root)
    meta = raw.meta
    assert meta["latent_dtype"] == latent_dtype

    # every file in the directory is a documented one
    patterns = others + [f"{d.stem}.g<G>.{e}" for d in arrays.values() for e in d.exts]
    for path in root.iterdir():
        assert any(matches(path.name, p, meta) for p in patterns), path.name

    ext = {"fp16": "f16", "fp32": "f32", "int8": "i8"}
    joint = read_documented(root, meta, arrays["joint"], "f32")
    routing = read_documented(root, meta, arrays["routing"], "f32")
    latents = read_documented(root, meta, arrays["latents"], ext[latent_dtype])
    times = read_documented(root, meta, arrays["frame_times"], "f64")
    frame_joint = read_documented(root, meta, arrays["frame_joint"], ext[meta["frame_dtype"]]).astype(np.float32)
    scales_path = root / f"latent_scales.g{meta['generation']}.f32"
    assert scales_path.exists() == (latent_dtype == "int8")
    if latent_dtype == "int8":
        values = latents.astype(np.float32) * read_documented(root, meta, arrays["latent_scales"], "f32")[..., None]
    else:
        values = latents.astype(np.float32)

    with IndexStore.open(root) as store:
        for video in videos:
            segs = raw.segments(video.path)
            vid = raw.videos[str(video.path.resolve())][0]
            rows = [s.vec_row for s in segs]
            # the 1-FPS frames of each segment, at their documented rows: whole seconds inside the segment
            for s in segs:
                t = times[s.frame_row : s.frame_row + s.frame_count]
                np.testing.assert_allclose(t, np.arange(math.ceil(s.start_s - 1e-9), s.end_s - 1e-9), atol=1e-6)
                fj = frame_joint[s.frame_row : s.frame_row + s.frame_count]
                np.testing.assert_allclose(np.linalg.norm(fj, axis=1), 1.0, atol=2e-3)  # L2-normalised
                mean = fj.mean(axis=0)
                assert float(joint[s.vec_row] @ mean / np.linalg.norm(mean)) > 0.999  # the frames' joint mean
            np.testing.assert_allclose(np.linalg.norm(joint[rows], axis=1), 1.0, atol=1e-5)
            # the documented rows are what salova itself reads back
            np.testing.assert_array_equal(joint[rows], store.load_joint(vid))
            np.testing.assert_array_equal(routing[rows], store.load_routing(vid))
            np.testing.assert_allclose(values[rows], np.asarray(store.load_latents(vid), np.float32), rtol=0, atol=1e-6)


def test_int8_latents_times_their_scales_are_the_fp16_latents(indexes):
    """value = int8 x scale (docs): the int8 index's latents, dequantized by the documented rule, are the fp16
    index's latents of the same videos to within half a quantization step."""
    videos, dirs = indexes
    arrays, _ = documented_layout()
    raw16, raw8 = RawIndex(dirs["fp16"]), RawIndex(dirs["int8"])
    q = read_documented(dirs["int8"], raw8.meta, arrays["latents"], "i8").astype(np.float32)
    scales = read_documented(dirs["int8"], raw8.meta, arrays["latent_scales"], "f32")  # [rows x L]
    f16 = read_documented(dirs["fp16"], raw16.meta, arrays["latents"], "f16").astype(np.float32)
    for video in videos:
        r8 = [s.vec_row for s in raw8.segments(video.path)]
        r16 = [s.vec_row for s in raw16.segments(video.path)]
        dequantized = q[r8] * scales[r8][..., None]
        step = scales[r8][..., None]
        assert np.all(np.abs(dequantized - f16[r16]) <= 0.5 * step + 2e-3 * np.abs(f16[r16]) + 1e-6)
        assert np.abs(q[r8]).max() == 127  # the scale maps each latent's largest value to +-127
