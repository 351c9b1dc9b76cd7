"""`salova train`: presets, data readers, router labels, and real DeepSpeed ZeRO-2 runs on CPU.

Training runs use the tiny random models (tests/models_fixtures.py), real H.264 videos and PNG images, and
DeepSpeed itself (no mocks). Each run is a few optimizer steps on a batch that repeats.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from salova.errors import TrainingDataError, UsageError
from salova.models import Salova
from salova.testing.videos import make_random_bytes, make_video
from salova.train import STAGE_PRESETS, STAGES, TrainConfig, resolve_config, stage_preset, train
from salova.train.data import (
    Scene,
    TrainingSet,
    assign_scenes,
    read_samples,
    router_labels,
    sample_frames,
    sample_labels,
)
from salova.train.engine import cosine_with_warmup, deepspeed_config
from tests.cli_helpers import ROOT, cli

CONFIGS = ROOT / "training" / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are latency-bound; one intra-op thread is faster and steadier on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _restore_process_env():
    """A one-process training run fills in RANK, WORLD_SIZE, ... ; other test modules should not see them."""
    keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DS_ACCELERATOR")
    before = {k: os.environ.get(k) for k in keys}
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# ---------------------------------------------------------------- data on disk
@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 6 s video with three scenes (cuts at 2 s and 4 s) and a PNG image."""
    from PIL import Image

    root = tmp_path_factory.mktemp("train_media")
    make_video(root / "clip.mp4", [(2.0, (230, 20, 20)), (2.0, "noise"), (2.0, (20, 20, 230))], fps=10, size=(64, 48))
    Image.fromarray(np.full((40, 56, 3), (20, 200, 40), np.uint8)).save(root / "green.png")
    return root


def conv(q, a):
    return [{"from": "human", "value": f"<video>\n{q}"}, {"from": "gpt", "value": a}]


@pytest.fixture(scope="module")
def llava_json(media):
    """Stage 1/2 style: a video (segments detected like `salova index`) and an image."""
    records = [
        {"id": "v", "video": "clip.mp4", "conversations": conv("what happens in the video?", "red then blue")},
        {"id": "i", "image": "green.png", "conversations": [
            {"from": "human", "value": "<image>\nwhat color is this?"}, {"from": "gpt", "value": "green"}]},
    ]
    path = media / "llava.json"
    path.write_text(json.dumps(records))
    return path


def scenewalk_line(video="clip.mp4", **extra):
    scenes = [
        {"start_frame": 0, "end_frame": 20, "start_time": 0.0, "end_time": 2.0, "v2t_score": 0.30, "t2t_score": 0.1},
        {"start_frame": 20, "end_frame": 40, "start_time": 2.0, "end_time": 4.0, "v2t_score": 0.05, "t2t_score": 0.9},
        {"start_frame": 40, "end_frame": 60, "start_time": 4.0, "end_time": 6.0, "v2t_score": 0.02, "t2t_score": 0.1},
    ]
    return {"id": "sw0", "video": video, "total_time": 6.0, "clip_num": 3, "scenes": scenes,
            "conversations": conv("describe the video in detail", "a red scene, noise, then a blue scene"), **extra}


@pytest.fixture(scope="module")
def scenewalk_jsonl(media):
    path = media / "scenewalk.jsonl"
    path.write_text(json.dumps(scenewalk_line()) + "\n" + json.dumps({**scenewalk_line(), "id": "sw1"}) + "\n")
    return path


def run(tmp_path, stage, data, init, name="out", **over):
    """A few optimizer steps (2 micro-batches each) on tiny models; returns (result, output dir)."""
    values = {"data": [str(data)], "output": str(tmp_path / name), "init": str(init), "global_batch_size": 2,
              "micro_batch_size": 1, "max_steps": 5, "warmup_ratio": 0.0, "lr": 2e-3, "num_workers": 0,
              "save_every": 0, "progress": False}
    values.update(over)
    return train(resolve_config(stage, None, values)), tmp_path / name


def log_of(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------- presets and configs
def test_presets_are_the_papers_table_5():
    s1, s15, s2 = (stage_preset(s) for s in ("1", "1.5", "2"))
    assert s1.train_parts == ["connector", "router", "projector"]
    assert "vision_encoder" not in s15.train_parts and {"llm", "text_encoder"} <= set(s15.train_parts)
    assert set(s2.train_parts) == {"connector", "router", "projector", "llm", "text_encoder", "vision_encoder"}
    assert (s1.lr, s15.lr, s2.lr) == (1e-3, 2e-5, 2e-5)
    assert s15.encoder_lr == s2.encoder_lr == 2e-6
    assert (s1.global_batch_size, s15.global_batch_size, s2.global_batch_size) == (256, 8, 64)
    assert (s1.max_token_drop, s15.max_token_drop, s2.max_token_drop) == (0.0, 0.7, 0.4)
    assert (s1.sim_loss_weight, s15.sim_loss_weight, s2.sim_loss_weight) == (5.0, 1.0, 1.0)
    for c in (s1, s15, s2):
        assert c.betas == [0.9, 0.999] and c.warmup_ratio == 0.03 and c.max_grad_norm == 1.0
        assert c.epochs == 1 and c.max_length == 8192 and c.precision == "auto"
        assert (c.v2t_threshold, c.t2t_threshold) == (0.18, 0.8)
    # The reference: margin term from stage 1.5 on; LLaVA's plain template in stages 1 and 1.5.
    assert (s1.margin_term, s15.margin_term, s2.margin_term) == (False, True, True)
    assert (s1.prompt, s15.prompt, s2.prompt) == ("plain", "plain", "chat")


def test_a_flag_chooses_whether_the_vision_encoder_trains_in_stage_1_5():
    assert "vision_encoder" not in resolve_config("1.5", None, {"data": ["d"]}).train_parts  # paper Sec. 4.2
    trained = resolve_config("1.5", None, {"data": ["d"], "train_vision_encoder": True})  # Table 5, reference
    assert "vision_encoder" in trained.train_parts
    frozen = resolve_config("2", None, {"data": ["d"], "train_vision_encoder": "false"})
    assert "vision_encoder" not in frozen.train_parts and "llm" in frozen.train_parts


def test_every_stage_has_a_shipped_recipe():
    assert sorted(yaml.safe_load(p.read_text())["stage"] for p in RECIPES) == sorted(STAGES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_equal_the_presets(path):
    """STAGE_PRESETS is the one source; every YAML in training/configs must resolve to its stage's preset."""
    stage = yaml.safe_load(path.read_text())["stage"]
    from_file = resolve_config(None, path, {"data": ["x.json"]})
    expected = stage_preset(stage)
    expected.data = ["x.json"]
    assert from_file == expected


def test_flags_win_over_config_file_over_preset(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("stage: '1'\nlr: 5.0e-4\nglobal_batch_size: 32\nmodel_overrides: {connector: {depth: 1}}\n")
    cfg = resolve_config(None, cfg_file, {"data": ["d.json"], "global_batch_size": 16, "lr": None})
    assert cfg.stage == "1" and cfg.lr == 5e-4 and cfg.global_batch_size == 16
    assert cfg.max_token_drop == 0.0 and cfg.model_overrides == {"connector": {"depth": 1}}
    flag_stage = resolve_config("2", cfg_file, {"data": ["d.json"]})  # --stage picks the preset; the file still applies
    assert (flag_stage.stage, flag_stage.max_token_drop, flag_stage.lr) == ("2", 0.4, 5e-4)


def test_config_problems_are_one_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown training option"):
        resolve_config("2", None, {"data": ["d"], "learning_rate": 1})
    with pytest.raises(UsageError) as err:
        resolve_config("2", None, {"data": ["d"], "lr": -1, "max_token_drop": 1.5, "focus": "magic"})
    msg = str(err.value)
    assert "lr must be > 0" in msg and "max_token_drop" in msg and "focus" in msg
    with pytest.raises(UsageError, match="stage '3': expected one of"):  # field names; the CLI says --stage
        resolve_config("3", None, {"data": ["d"]})
    with pytest.raises(UsageError, match="no training data"):
        TrainConfig().validate()


def test_deepspeed_config_is_zero2_from_the_preset(tmp_path):
    cfg = stage_preset("2")
    ds = deepspeed_config(cfg, world_size=4)
    assert ds["zero_optimization"]["stage"] == 2
    assert (ds["train_batch_size"], ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (
        64, 1, 16)
    assert ds["optimizer"]["params"]["betas"] == [0.9, 0.999] and ds["optimizer"]["params"]["torch_adam"]
    assert ds["gradient_clipping"] == 1.0
    shipped = deepspeed_config(cfg, 4, CONFIGS / "zero2.json")  # "auto" everywhere: the same as generated
    assert shipped == ds
    with pytest.raises(UsageError, match="not a multiple"):
        deepspeed_config(stage_preset("1.5"), world_size=3)
    bad = tmp_path / "ds.json"
    bad.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    with pytest.raises(UsageError, match="stage 3"):
        deepspeed_config(cfg, 1, bad)
    bad.write_text(json.dumps({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 1,
                               "gradient_accumulation_steps": 1}))
    with pytest.raises(UsageError, match="train_batch_size"):
        deepspeed_config(cfg, 1, bad)


def test_cosine_schedule_with_warmup():
    f = cosine_with_warmup(total_steps=100, warmup_steps=3)
    assert [round(f(s), 3) for s in (0, 1, 3)] == [0.0, 0.333, 1.0]
    assert f(50) == pytest.approx(0.5 * (1 + np.cos(np.pi * 47 / 97)))
    assert f(100) == pytest.approx(0.0)


# ---------------------------------------------------------------- data
def test_router_labels_follow_the_paper_thresholds_and_keep_every_positive():
    assert router_labels([0.3, 0.1, 0.1], [None, 0.9, 0.1]) == [True, True, False]  # v2t > .18 or t2t > .8
    assert router_labels([0.1, 0.15, 0.05], None) == [False, True, False]  # none: the best v2t
    many = [0.2 + i / 100 for i in range(8)]
    assert router_labels(many, None) == [True] * 8  # every positive is a loss target: no cap
    assert router_labels([None, None], None) is None  # no scores: unknown
    assert router_labels([0.5, 0.5], None, v2t_threshold=0.6) == [True, False]


def scenewalk_descriptions(video="clip.mp4", **extra):
    """A SceneWalk JSONL record as released: one human/gpt pair per scene, no scores."""
    scenes = [{"start_frame": 20 * i, "end_frame": 20 * (i + 1), "start_time": 2.0 * i, "end_time": 2.0 * (i + 1)}
              for i in range(3)]
    conversations = []
    for i, what in enumerate(["a red scene", "a noisy scene", "a blue scene"]):
        conversations += conv(f"describe the scene from {2 * i} to {2 * i + 2} seconds", f"it is {what}")
    return {"id": "walk", "video": video, "total_time": 6.0, "clip_num": 3, "scenes": scenes,
            "conversations": conversations, **extra}


def test_scenewalk_descriptions_are_router_queries_with_diagonal_labels(media, tmp_path):
    data = tmp_path / "walk.jsonl"
    data.write_text(json.dumps(scenewalk_descriptions(video=str(media / "clip.mp4"))) + "\n")
    (sample,), _ = read_samples([data])
    assert [q.text for q in sample.queries] == ["it is a red scene", "it is a noisy scene", "it is a blue scene"]
    assert len(sample.pairs) == 3 and sample.question == "describe the scene from 0 to 2 seconds"
    assert sample_labels(sample) == [[True, False, False], [False, True, False], [False, False, True]]
    example = TrainingSet([sample], fit=(32, True)).decode(sample)
    assert example.queries == [q.text for q in sample.queries] and example.num_segments == 3
    # A description count that does not match the scenes is malformed, not silently truncated.
    bad = scenewalk_descriptions(video=str(media / "clip.mp4"))
    bad["conversations"] = bad["conversations"][:4]
    bad["lb_sim"] = [[0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]]
    data.write_text(json.dumps(bad) + "\n" + json.dumps(scenewalk_descriptions(video=str(media / "clip.mp4"))))
    samples, report = read_samples([data])
    assert len(samples) == 1 and dict(report.skipped) == {"malformed": 1}


def write_parquet(rows: list[dict], path: Path) -> Path:
    import duckdb

    staged = path.with_suffix(".json")
    staged.write_text(json.dumps(rows))
    duckdb.sql(f"COPY (SELECT * FROM read_json_auto('{staged}')) TO '{path}' (FORMAT parquet)")
    return path


def test_parquet_clip_rows_with_score_sequences_give_the_reference_labels(media, tmp_path):
    v2t = [[0.30, 0.22, 0.05], [0.10, 0.15, 0.12], [0.01, 0.25, 0.90]]  # description x scene
    t2t = [[1.00, 0.50, 0.84], [0.20, 0.95, 0.10], [0.10, 0.10, 1.00]]
    rows = [
        {"id": "vid", "url": "https://example.invalid/v",
         "time_stamp": {"start_time": f"0:00:0{2 * i}.000", "end_time": f"0:00:0{2 * i + 2}.000",
                        "start_frame": 20 * i, "end_frame": 20 * i + 20, "start_fps": 10, "end_fps": 10,
                        "duration": 2},
         "v2t_score": v2t[i], "t2t_score": t2t[i],
         "conversations": conv(f"scene {i}?", f"description {i}")}
        for i in (2, 0, 1)  # rows need not be in time order
    ]
    data = write_parquet(rows, tmp_path / "walk.parquet")
    (tmp_path / "vid.mp4").symlink_to(media / "clip.mp4")  # no `video` column: the file is <id>.mp4
    (sample,), _ = read_samples([data], video_root=tmp_path)
    assert sample.media == tmp_path / "vid.mp4"
    assert [q.text for q in sample.queries] == ["description 0", "description 1", "description 2"]
    assert [s.start_s for s in sample.scenes] == [0.0, 2.0, 4.0]
    # The reference's stage 1.5 rule: t2t > 0.83 or v2t > 0.21, row by row, every positive kept.
    expected = [[t > 0.83 or v > 0.21 for v, t in zip(vr, tr, strict=True)] for vr, tr in zip(v2t, t2t, strict=True)]
    assert sample_labels(sample, 0.21, 0.83) == expected == [[True, True, True], [False, True, False],
                                                             [False, True, True]]


def test_read_samples_skips_and_counts_bad_records(media, tmp_path):
    good = scenewalk_line(video=str(media / "clip.mp4"))
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"id": "nomedia", "conversations": good["conversations"]}),
        json.dumps({**good, "id": "gone", "video": "missing.mp4"}),
        json.dumps({**good, "id": "noanswer", "conversations": [{"from": "human", "value": "hi"}]}),
        json.dumps({**good, "id": "badscene", "scenes": [{"v2t_score": 1}]}),
        "",
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(lines))
    samples, report = read_samples([data])
    assert [s.id for s in samples] == ["sw0"]
    assert dict(report.skipped) == {"malformed": 4, "missing media": 1}
    assert samples[0].question == "describe the video in detail" and samples[0].kind == "video"
    with pytest.raises(TrainingDataError, match="not found"):
        read_samples([tmp_path / "nope.json"])
    data.write_text("{not json\n")
    with pytest.raises(TrainingDataError, match="no usable training samples"):
        read_samples([data])


def test_llava_json_roots_and_images(llava_json, media):
    samples, _ = read_samples([llava_json], video_root=media)
    assert [(s.kind, s.media.name, s.scenes) for s in samples] == [("video", "clip.mp4", None),
                                                                  ("image", "green.png", None)]
    assert samples[1].question == "what color is this?" and samples[1].answer == "green"


def test_frames_follow_the_data_scenes(media):
    video = sample_frames(media / "clip.mp4", 1.0, fit=(32, True))
    assert video.frames.shape == (6, 32, 43, 3)  # 64x48 shrunk: shortest side to the encoder's input size
    assert video.cuts == [20, 40]
    groups = assign_scenes(video, (Scene(0.0, 2.0), Scene(2.0, 2.2), Scene(2.0, 6.0)))
    assert [g.tolist() for g in groups] == [[0, 1], [2], [2, 3, 4, 5]]  # a short scene gets its nearest frame


# ---------------------------------------------------------------- training runs (DeepSpeed ZeRO-2, CPU)
@pytest.mark.parametrize("stage", ["1", "1.5", "2"])
def test_each_stage_learns_a_repeated_batch_and_saves_a_loadable_checkpoint(
    stage, tmp_path, salova_dir, llava_json, scenewalk_jsonl
):
    data = scenewalk_jsonl if stage == "1.5" else llava_json
    result, out = run(tmp_path, stage, data, salova_dir)
    log = log_of(out)
    assert result.steps == 5 and [x["step"] for x in log] == [1, 2, 3, 4, 5]
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["lm_loss"] < log[0]["lm_loss"]
    assert all(x["sim_loss"] is not None for x in log)  # in-batch negatives (1) / labelled scenes (1.5)
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["stage"] == stage and cfg["world_size"] == 1 and cfg["bf16"] is False
    assert cfg["max_token_drop"] == STAGE_PRESETS[stage]["max_token_drop"]
    ds = json.loads((out / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["gradient_accumulation_steps"] == 2

    before = Salova.from_pretrained(salova_dir)
    model = Salova.from_pretrained(out)
    assert model.llm is not None and model.config.connector.max_token_drop == STAGE_PRESETS[stage]["max_token_drop"]
    changed = lambda a, b: not torch.equal(a, b)  # noqa: E731
    assert changed(model.router.text_proj.weight, before.router.text_proj.weight)
    assert changed(model.projector[0].weight, before.projector[0].weight)
    llm_w = model.llm.model.get_input_embeddings().weight
    vis_w = model.encoder.model.vision_model.embeddings.patch_embedding.weight
    txt_w = model.encoder.model.text_model.embeddings.token_embedding.weight
    if stage == "1":  # LLM and encoders frozen: not saved, loaded from the originals
        assert not (out / "llm").exists() and not (out / "encoder").exists()
        assert torch.equal(llm_w, before.llm.model.get_input_embeddings().weight)
    else:
        assert (out / "llm" / "config.json").is_file() and (out / "encoder" / "config.json").is_file()
        assert changed(llm_w, before.llm.model.get_input_embeddings().weight)
        assert changed(txt_w, before.encoder.model.text_model.embeddings.token_embedding.weight)
    vision_trained = changed(vis_w, before.encoder.model.vision_model.embeddings.patch_embedding.weight)
    assert vision_trained == (stage == "2")


def test_retrieval_only_training_without_an_llm(tmp_path, salova_retrieval_dir, scenewalk_jsonl):
    result, out = run(tmp_path, "1", scenewalk_jsonl, salova_retrieval_dir, router_query="question",
                      in_batch_negatives=False, max_steps=4)
    log = log_of(out)
    assert log[0]["lm_loss"] is None and log[-1]["sim_loss"] < log[0]["sim_loss"]
    assert Salova.from_pretrained(out).llm is None


def test_stage_1_5_on_scenewalk_descriptions_trains_the_router_at_every_step(capsys, tmp_path, media, salova_dir):
    data = tmp_path / "walk.jsonl"
    data.write_text(json.dumps(scenewalk_descriptions(video=str(media / "clip.mp4"))) + "\n")
    r = cli(capsys, "train", "--stage", "1.5", "--data", data, "--init", salova_dir, "-o", tmp_path / "o",
            "--global-batch", 2, "--micro-batch", 1, "--max-steps", 3, "--num-workers", 0, "--json")
    assert r.code == 0, r.err
    summary = r.json()
    assert summary["router_queries"] == 3 * 2 * 3  # every description, every sample, every step
    log = log_of(tmp_path / "o")
    assert [x["router_queries"] for x in log] == [6, 6, 6]
    assert all(x["sim_loss"] is not None and x["lm_loss"] is not None for x in log)


def test_plain_prompt_is_visual_tokens_then_the_answer(salova_dir):
    from salova.train.forward import SalovaForTraining

    model = Salova.from_pretrained(salova_dir)
    wrap = SalovaForTraining(model, prompt="plain")
    visual = torch.randn(7, model.llm.hidden_size)
    embeds, labels = wrap.plain_inputs(visual, "a red scene")
    tok = model.llm.tokenizer
    target = tok("a red scene\n", add_special_tokens=False)["input_ids"]
    starts_with_bos = tok("a")["input_ids"][:1] == [tok.bos_token_id]
    n_bos = int(starts_with_bos)
    assert embeds.shape[:2] == labels.shape == (1, n_bos + 7 + len(target))
    assert labels[0, : n_bos + 7].eq(-100).all() and labels[0, n_bos + 7 :].tolist() == target
    torch.testing.assert_close(embeds[0, n_bos : n_bos + 7], visual)


def test_bad_samples_are_skipped_counted_and_reported(tmp_path, media, salova_dir, capsys):
    make_random_bytes(tmp_path / "junk.mp4")
    lines = [json.dumps(scenewalk_line(video=str(media / "clip.mp4"))), "[1, 2",
             json.dumps(scenewalk_line(video=str(tmp_path / "junk.mp4"))),
             json.dumps(scenewalk_line(video=str(tmp_path / "absent.mp4")))]
    data = tmp_path / "mixed.jsonl"
    data.write_text("\n".join(lines) + "\n")
    result, out = run(tmp_path, "1.5", data, salova_dir, max_steps=1)
    assert result.steps == 1
    assert result.skipped == {"malformed": 1, "missing media": 1, "unreadable media": 1}
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["skipped"] == result.skipped


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, salova_dir, llava_json, request):
    """SIGINT saves a resumable checkpoint (exit code 130); --resume restores weights, optimizer and
    scheduler state and the data position, so the final model is the one an uninterrupted run makes."""
    steps = 16
    common = dict(max_steps=steps, max_token_drop=0.5)
    ref, ref_out = run(tmp_path, "2", llava_json, salova_dir, name="ref", **common)
    # A SIGINT that lands after training restored its handlers must not stop pytest.
    outer = signal.signal(signal.SIGINT, lambda *_: None)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, outer))

    out = tmp_path / "cut"
    done = threading.Event()

    def interrupt_after_first_step():
        log = out / "train_log.jsonl"
        while not done.is_set():
            if log.is_file() and log.read_text().count("\n") >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=interrupt_after_first_step, daemon=True)
    killer.start()
    try:
        cut, _ = run(tmp_path, "2", llava_json, salova_dir, name="cut", **common)
    finally:
        done.set()
        killer.join()
    assert cut.interrupted == "SIGINT" and cut.exit_code == 130
    assert 2 <= cut.steps < steps and Path(cut.checkpoint).name == f"step{cut.steps}"
    assert not (out / "model.safetensors").exists()  # no final checkpoint for an interrupted run
    with pytest.raises(UsageError, match="resume is not set"):
        run(tmp_path, "2", llava_json, salova_dir, name="cut", **common)

    resumed, _ = run(tmp_path, "2", llava_json, salova_dir, name="cut", resume=True, **common)
    assert resumed.steps == steps and resumed.interrupted is None
    assert [x["step"] for x in log_of(out)] == list(range(1, steps + 1))
    a, b = Salova.from_pretrained(ref_out), Salova.from_pretrained(out)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=name)
    ref_log, cut_log = log_of(ref_out), log_of(out)
    assert [x["lr"] for x in ref_log] == [x["lr"] for x in cut_log]
    for x, y in zip(ref_log, cut_log, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)


def test_periodic_checkpoints_are_pruned(tmp_path, salova_dir, llava_json):
    result, out = run(tmp_path, "1", llava_json, salova_dir, max_steps=6, save_every=2, keep_checkpoints=1)
    kept = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step4"] and (out / "checkpoints" / "step4" / "trainer_state.json").is_file()
    assert result.checkpoint.endswith("step4")


# ---------------------------------------------------------------- CLI
def test_cli_trains_and_prints_one_summary_line(capsys, tmp_path, salova_dir, llava_json):
    r = cli(capsys, "train", "--stage", "1", "--data", llava_json, "--init", salova_dir, "-o", tmp_path / "o",
            "--global-batch", 2, "--micro-batch", 2, "--max-steps", 2, "--num-workers", 0, "--lr", 1e-3,
            "--set", "warmup_ratio=0", "--quiet")
    assert r.code == 0, r.err
    assert (tmp_path / "o" / "model.safetensors").is_file()
    r = cli(capsys, "train", "--stage", "1", "--data", llava_json, "--init", salova_dir, "-o", tmp_path / "p",
            "--global-batch", 2, "--micro-batch", 2, "--max-steps", 1, "--num-workers", 0)
    assert r.code == 0, r.err
    assert r.out.startswith("stage 1: 1 steps, 2 samples") and r.out.strip().endswith(str(tmp_path / "p"))


def test_cli_print_config_and_errors(capsys, tmp_path):
    r = cli(capsys, "train", "--stage", "1.5", "--data", "d.jsonl", "--lr", "3e-5", "--set", "top_k=3",
            "--print-config")
    cfg = json.loads(r.out)
    assert r.code == 0 and cfg["lr"] == 3e-5 and cfg["top_k"] == 3 and cfg["max_token_drop"] == 0.7
    r = cli(capsys, "train", "--data", tmp_path / "missing.json", "-o", tmp_path / "o")
    assert r.code == 1 and "training data file not found" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli(capsys, "train", "--stage", "7", "--data", "x.json")
    assert r.code == 2 and "--stage" in r.err
    r = cli(capsys, "train", "--data", "x.json", "--set", "lr=-1", "--set", "train_parts=[]", "--print-config")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "--lr must be > 0" in r.err and "--set train_parts is empty" in r.err  # field names become flags


# The flags of `salova train`, pinned: the command is generated from TrainConfig, and must keep these.
TRAIN_FLAGS = {
    "--stage", "--data", "--output", "-o", "--video-root", "--image-root", "--init", "--encoder", "--llm", "--lr",
    "--llm-lr", "--encoder-lr", "--global-batch", "--micro-batch", "--epochs", "--max-steps", "--warmup-ratio",
    "--max-token-drop", "--max-length", "--top-k", "--sim-loss-weight", "--v2t-threshold", "--t2t-threshold",
    "--focus", "--train-vision", "--freeze-vision", "--precision", "--deepspeed", "--save-every", "--resume",
    "--num-workers", "--seed",
    "--config", "--set", "--print-config", "--json", "--quiet", "-q", "--local_rank", "--local-rank",
}
CLI_OWN = {"config", "set_", "print_config", "as_json", "quiet", "local_rank"}  # options that are not fields


def _a_value_other_than(default, f, tp):
    """A valid value of field ``f`` (of type ``tp``) other than ``default``."""
    import typing

    args = typing.get_args(tp)
    base = next(a for a in args if a is not type(None)) if type(None) in args else tp
    if typing.get_origin(base) is typing.Literal:
        return next(c for c in typing.get_args(base) if c != default)
    if typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        if typing.get_origin(item) is typing.Literal:
            return [typing.get_args(item)[0]]
        return [0.5, 0.25] if item is float else ["a.json", "b.jsonl"]
    if base is bool:
        return not default
    if base is int:
        return 3 if default is None else default + 3
    if base is float:
        if default is None:
            return 0.25
        return (default + f.metadata["lt"]) / 2 if f.metadata["lt"] is not None else default + 1.5
    if base is dict:
        return {"connector": {"depth": 1}}
    return f"some/where-{f.name}"


def test_cli_options_are_the_config_fields(capsys):
    """Every TrainConfig field is reachable from the command line (its flag, else --set), every flag is a field
    (or one of the command's own options), and a value given either way lands in the resolved config."""
    import dataclasses

    import typer

    from salova.train.config import field_types
    from salova_cli import train_cmd

    app = typer.Typer(add_completion=False)
    app.command()(train_cmd.train)
    command = typer.main.get_command(app)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    params = {p.name: p for p in command.params if p.name != "help"}
    assert set(params) - CLI_OWN == set(train_cmd.FLAGS) and set(train_cmd.FLAGS) <= fields  # no extra flag
    assert {o for p in params.values() for o in p.opts + p.secondary_opts} == TRAIN_FLAGS  # today's flags
    assert set(train_cmd.FLAGS) | set(train_cmd.set_keys()) == fields
    assert all(params[name].help.startswith(f.metadata["help"]) for f in dataclasses.fields(TrainConfig)
               if (name := f.name) in params)

    types, argv, expected = field_types(), [], {}
    preset = stage_preset("1")  # the stage given below; every other field gets a value unlike its preset's
    for f in dataclasses.fields(TrainConfig):
        value = expected[f.name] = "1" if f.name == "stage" else _a_value_other_than(
            getattr(preset, f.name), f, types[f.name])
        if f.name not in train_cmd.FLAGS:
            argv += ["--set", f"{f.name}={json.dumps(value)}"]
        elif isinstance(value, bool):
            argv += [train_cmd.flag_of(f.name)] if value else []
        elif isinstance(value, list):
            argv += [x for v in value for x in (train_cmd.flag_of(f.name), v)]
        else:
            argv += [train_cmd.flag_of(f.name), repr(value) if isinstance(value, float) else value]
    if expected["train_vision_encoder"]:  # the flag adds the vision tower to the parts given
        expected["train_parts"] = [p for p in expected["train_parts"] if p != "vision_encoder"] + ["vision_encoder"]
    r = cli(capsys, "train", *argv, "--print-config")
    assert r.code == 0, r.err
    assert json.loads(r.out) == expected


# ---------------------------------------------------------------- multi-process
def test_two_processes_under_torchrun(tmp_path, salova_dir, llava_json):
    """`torchrun --nproc_per_node 2 -m salova_cli train ...`: gloo on CPU, one checkpoint from rank 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "salova_cli", "train", "--stage", "2", "--data", str(llava_json), "--init", str(salova_dir), "-o", str(out),
           "--global-batch", "2", "--micro-batch", "1", "--max-steps", "3", "--num-workers", "0", "--lr", "1e-3",
           "--set", "warmup_ratio=0", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = json.loads((out / "train_config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["gradient_accumulation_steps"] == 1
    log = log_of(out)
    assert [x["step"] for x in log] == [1, 2, 3] and all(x["samples_per_s"] > 0 for x in log)
    assert Salova.from_pretrained(out).llm is not None
