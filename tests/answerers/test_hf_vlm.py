"""A Hugging Face VLM answers from the top-K moments' frames, re-decoded at their stored times.

Tiny random Qwen2-VL and Idefics3 checkpoints are saved like hub repositories and loaded by `--answerer DIR`
(AutoProcessor + AutoModelForImageTextToText). The video's frames carry their frame number, so the test reads
which frames the processor was handed, and checks the model got that many images.
"""

from __future__ import annotations

import json
import re

import pytest
from transformers import Idefics3Processor, Qwen2VLProcessor

from salova.store.store import IndexStore
from tests.answerers.conftest import FPS, read_barcode
from tests.cli_helpers import cli

PROCESSORS = {"qwen2_vl_dir": Qwen2VLProcessor, "idefics3_dir": Idefics3Processor}


@pytest.fixture()
def processor_spy(monkeypatch):
    """Records (text, images, outputs) of every processor call."""
    calls = []
    for cls in PROCESSORS.values():
        original = cls.__call__

        def spy(self, *args, _original=original, **kwargs):
            out = _original(self, *args, **kwargs)
            images = kwargs.get("images") or []
            flat = [im for group in images for im in (group if isinstance(group, list) else [group])]
            calls.append({"text": kwargs.get("text"), "images": flat, "out": out})
            return out

        monkeypatch.setattr(cls, "__call__", spy)
    return calls


def stored_times(index, video) -> list[list[float]]:
    with IndexStore.open(index) as store:
        rec = store.get_video(str(video.path.resolve()))
        return [[float(t) for t in times] for times, _ in store.load_frames(rec.id)]


@pytest.mark.parametrize("vlm", ["qwen2_vl_dir", "idefics3_dir"])
def test_vlm_reads_exactly_the_top_k_moments_frames_at_their_times(capsys, request, indexed, processor_spy, vlm):
    video, index = indexed
    model_dir = request.getfixturevalue(vlm)
    run = cli(capsys, "ask", video.path, "when is the blue scene?", "--index", index, "--answerer", model_dir,
              "--top-k", "3", "--max-frames", "5", "--max-new-tokens", "4", "--json", "--device", "cpu")
    assert run.code == 0, run.err
    out = run.json()
    assert out["answerer"] == f"hf-vlm:{model_dir}" and isinstance(out["answer"], str) and out["answer"]
    given = out["answer_moments"]
    assert [(m["rank"], m["segment"]) for m in given] == [(m["rank"], m["segment"]) for m in out["moments"]]
    by_rank = {m["rank"]: len(m["frame_times"]) for m in given}
    assert by_rank == {1: 2, 2: 2, 3: 1}  # 5 frames over 3 moments; 2 stored per 2-s scene
    stored = stored_times(index, video)
    for m in given:
        assert set(m["frame_times"]) <= set(stored[m["segment"]])  # times from the index only
        assert m["at_s"] in m["frame_times"]
        assert all(m["start_s"] <= t < m["end_s"] for t in m["frame_times"])

    (call,) = processor_spy
    expected = [round(t * FPS) for m in given for t in m["frame_times"]]  # prompt order: moments in time order
    assert [read_barcode(im) for im in call["images"]] == expected
    labels = re.findall(r"\[(\d\d:\d\d:\d\d)\] ", call["text"] if isinstance(call["text"], str) else call["text"][0])
    assert len(labels) == len(expected)
    # ... and the model's inputs hold that many images
    inputs = call["out"]
    n = inputs["image_grid_thw"].shape[0] if "image_grid_thw" in inputs else inputs["pixel_values"].shape[1]
    assert n == len(expected)


def test_answer_cites_the_moments_by_index_time(capsys, indexed, qwen2_vl_dir):
    video, index = indexed
    run = cli(capsys, "ask", video.path, "what happens?", "--index", index, "--answerer", qwen2_vl_dir,
              "--top-k", "2", "--max-new-tokens", "3", "--device", "cpu")
    assert run.code == 0, run.err
    # A random model cites nothing: the moments' index times are appended to its text.
    assert re.search(r"\(Moments: \[\d\d:\d\d:\d\d-\d\d:\d\d:\d\d\], \[", run.out)
    assert "answered by hf-vlm:" in run.err


def test_batch_loads_the_answerer_once(capsys, tmp_path, indexed, idefics3_dir, monkeypatch):
    import transformers

    video, index = indexed
    loads = []
    original = transformers.AutoModelForImageTextToText.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", classmethod(counting))
    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"video": str(video.path), "question": q}) + "\n"
                             for q in ("red?", "green?", "blue?")))
    run = cli(capsys, "ask", "--questions", qfile, "--index", index, "--answerer", idefics3_dir,
              "--max-new-tokens", "2", "--max-frames", "3", "--device", "cpu")
    assert run.code == 0, run.err
    lines = [json.loads(ln) for ln in run.out.splitlines()]
    assert len(lines) == 3 and all(ln["answer"] and ln["answerer"].startswith("hf-vlm:") for ln in lines)
    assert len(loads) == 1


def test_without_torchvision_a_processor_is_built_from_its_image_half(qwen2_vl_dir, idefics3_dir):
    """transformers 5 needs torchvision for the video half of Qwen2-VL-style processors; salova sends images only."""
    from salova.answerers.hf_vlm import _image_only_processor

    qwen = _image_only_processor(str(qwen2_vl_dir))
    assert isinstance(qwen, Qwen2VLProcessor) and qwen.video_processor is None
    assert "<|vision_start|>" in qwen.chat_template
    idefics = _image_only_processor(str(idefics3_dir))  # no video half: built as saved, settings included
    assert isinstance(idefics, Idefics3Processor) and idefics.image_seq_len == 4
