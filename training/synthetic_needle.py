"""Evidence that `salova train` learns: synthetic long-video needle retrieval on CPU, tiny models.

Each video is a sequence of segments with distinct looks (flat colours, stripes, checks; a little
per-frame noise), written as a real H.264 file. One segment is the needle: the question names its look
("when is the red scene?"); the others are distractors. Training data is SceneWalk-style JSONL (scenes
with v2t scores: 1 for the needle, 0 otherwise); held-out videos use fresh look combinations and
durations. A stage-1-like run trains the ST-Connector and SR-Router (similarity loss, lr 1e-3) over a
frozen tiny random CLIP (``salova.tiny``) with the library's DeepSpeed ZeRO-2 loop, and the script
reports held-out top-1 retrieval accuracy of the router before and after training (chance = 1/segments).

    python training/synthetic_needle.py --output needle-ckpt/     # ~2-3 minutes on 2 CPU cores

``--output`` receives a self-contained retrieval checkpoint (config.json, model.safetensors, encoder/)
that ``salova index --model DIR`` / ``salova ask --model DIR`` load. Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

LOOKS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 50, 220), "yellow": (235, 220, 40),
    "white": (240, 240, 240), "black": (15, 15, 15), "striped": "stripes", "checkered": "checks",
}
QUESTIONS = ["when is the {} scene?", "when does the {} segment appear?", "find the {} moment"]
SIZE = (80, 60)  # W, H
FPS = 4  # written frame rate; training samples 1 FPS like everything else


def render(look, rng: np.random.Generator, i: int) -> np.ndarray:
    """One frame [H, W, 3] uint8 of ``look`` with mild noise (frames of a segment are not identical)."""
    w, h = SIZE
    if isinstance(look, tuple):
        frame = np.broadcast_to(np.asarray(look, np.int16), (h, w, 3)).copy()
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        on = (yy // 6) % 2 == 0 if look == "stripes" else ((xx + i) // 10 + yy // 10) % 2 == 0
        frame = np.where(on[..., None], 230, 25).astype(np.int16).repeat(3, axis=2)
    frame += rng.integers(-12, 13, size=frame.shape, dtype=np.int16)
    return frame.clip(0, 255).astype(np.uint8)


def write_video(path: Path, looks: list[str], durations: list[int], rng: np.random.Generator) -> None:
    from salova.testing.videos import VideoWriter

    # Lossless (qp 0): x264's rate control is not bit-reproducible from run to run on a busy machine;
    # lossless frames decode to the same pixels whatever the encoder decided.
    with VideoWriter(path, FPS, SIZE, quality={"qp": "0"}) as writer:
        for name, seconds in zip(looks, durations, strict=True):
            for i in range(seconds * FPS):
                writer.write(render(LOOKS[name], rng, i))


def make_split(root: Path, name: str, n: int, segments: int, rng: np.random.Generator) -> Path:
    """``n`` videos + a SceneWalk-style JSONL describing them (scenes, scores, question/answer)."""
    (root / name).mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(n):
        looks = list(rng.choice(list(LOOKS), size=segments, replace=False))
        durations = [int(d) for d in rng.integers(2, 5, size=segments)]  # 2-4 s per segment
        needle = int(rng.integers(segments))
        video = f"{name}/{name}{k:03d}.mp4"
        write_video(root / video, looks, durations, rng)
        starts = np.cumsum([0, *durations[:-1]]).tolist()
        scenes = [
            {"start_frame": s * FPS, "end_frame": (s + d) * FPS, "start_time": float(s), "end_time": float(s + d),
             "v2t_score": 1.0 if j == needle else 0.0, "t2t_score": 1.0 if j == needle else 0.0}
            for j, (s, d) in enumerate(zip(starts, durations, strict=True))
        ]
        question = QUESTIONS[int(rng.integers(len(QUESTIONS)))].format(looks[needle])
        answer = f"from {starts[needle]} to {starts[needle] + durations[needle]} seconds"
        lines.append({"id": f"{name}{k:03d}", "video": video, "total_time": float(sum(durations)),
                      "clip_num": segments, "scenes": scenes, "needle": needle,
                      "conversations": [{"from": "human", "value": f"<video>\n{question}"},
                                        {"from": "gpt", "value": answer}]})
    path = root / f"{name}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@torch.inference_mode()
def retrieval_accuracy(checkpoint: Path, data: Path) -> float:
    """Held-out top-1: does the router's best segment equal the needle? Same decoding as training."""
    from salova.models import Salova
    from salova.train.data import assign_scenes, parse_scenes, sample_frames
    from salova.train.forward import SalovaForTraining

    model = Salova.from_pretrained(checkpoint, load_llm=False).eval()
    wrap = SalovaForTraining(model).eval()
    fit = (model.encoder.preprocess.size, model.encoder.preprocess.crop)
    hits = total = 0
    for line in data.read_text().splitlines():
        rec = json.loads(line)
        video = sample_frames(data.parent / rec["video"], 1.0, fit=fit)
        groups = assign_scenes(video, parse_scenes(rec["scenes"]))
        order = np.concatenate(groups)
        seg = torch.from_numpy(np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)]))
        feats = model.encoder.encode_frames(video.frames[order])
        routing, _ = wrap.compress(feats.patches, feats.cls, seg, len(groups))
        question = rec["conversations"][0]["value"].split("\n", 1)[1]
        hits += int(model.score(routing, question).argmax()) == rec["needle"]
        total += 1
    return hits / total


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, help="save the trained retrieval checkpoint here (with encoder/)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, deleted)")
    ap.add_argument("--train-videos", type=int, default=96)
    ap.add_argument("--test-videos", type=int, default=48)
    ap.add_argument("--segments", type=int, default=6, help="segments per video (chance = 1/segments)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3, help="paper stage 1: 1e-3")
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="train_set", action="append", default=[], metavar="KEY=VALUE",
                    help="any training option (as `salova train --set`), e.g. margin_term=true")
    ap.add_argument("--model-set", action="append", default=[], metavar="PART.FIELD=VALUE",
                    help="a field of the random starting model, e.g. router.position_init_std=0.02 or "
                         "connector.init_std=0.02 (ablations)")
    args = ap.parse_args(argv)

    from salova.tiny import make_tiny_encoder, make_tiny_salova
    from salova.train import resolve_config, train
    from salova_cli.train_cmd import parse_set  # the same KEY=VALUE syntax as `salova train --set`

    # Tiny models are latency-bound: one intra-op thread is faster than several (and steadier on busy machines).
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="salova-needle-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    train_data = make_split(work, "train", args.train_videos, args.segments, rng)
    test_data = make_split(work, "test", args.test_videos, args.segments, rng)
    encoder = make_tiny_encoder(work / "encoder", "clip", seed=args.seed)
    parts = parse_set(args.model_set)
    init = make_tiny_salova(work / "init", encoder, None, seed=args.seed, router=parts.pop("router", {}),
                            **parts.pop("connector", {}))  # random connector + router, no LLM
    t_data = time.perf_counter() - t0

    before = retrieval_accuracy(init, test_data)
    cfg = resolve_config("1", None, {
        "data": [str(train_data)], "output": str(work / "trained"), "init": str(init),
        "lr": args.lr, "global_batch_size": args.global_batch, "micro_batch_size": args.global_batch,
        "epochs": args.epochs,
        # The question names the needle; other videos' segments are not negatives (they may share its look).
        "router_query": "question", "in_batch_negatives": False,
        "feature_cache": True, "num_workers": 0, "save_every": 0, "seed": args.seed, "progress": sys.stderr.isatty(),
        **parse_set(args.train_set),
    })
    t1 = time.perf_counter()
    result = train(cfg)
    t_train = time.perf_counter() - t1
    after = retrieval_accuracy(work / "trained", test_data)

    log = [json.loads(x) for x in (work / "trained" / "train_log.jsonl").read_text().splitlines()]
    report = {
        "chance": 1 / args.segments, "train_set": args.train_set, "model_set": args.model_set,
        "held_out_top1_before": before, "held_out_top1_after": after,
        "train_videos": args.train_videos, "test_videos": args.test_videos, "segments": args.segments,
        "steps": result.steps, "epochs": args.epochs, "sim_loss_first": log[0]["sim_loss"],
        "sim_loss_last": log[-1]["sim_loss"], "sim_loss_every_10_steps": [round(x["sim_loss"], 4) for x in log[::10]],
        "seconds_data": round(t_data, 1), "seconds_train": round(t_train, 1),
        "seconds_total": round(time.perf_counter() - t0, 1),
    }
    if args.output:
        out = args.output
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work / "trained", out, ignore=shutil.ignore_patterns("checkpoints"))
        shutil.copytree(encoder, out / "encoder")  # self-contained: the checkpoint carries its encoder
        report["output"] = str(out)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
