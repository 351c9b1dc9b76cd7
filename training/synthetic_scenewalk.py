"""Stage 1.5 on a SceneWalk-format set built from synthetic videos: does every description train the router?

Each video is a sequence of scenes with distinct looks (the needle task's renderer, real H.264 files). The
data file is SceneWalk JSONL as released: ``id``, ``video``, ``total_time``, ``clip_num``, ``scenes`` (start/end
frame and time) and one human/gpt pair per scene, **no scores**. A description is ``--prefix-words`` words of
text shared by every scene (uninformative), then the words that tell the scene apart ("... the red scene.").
With the default prefix, those words start past CLIP's 77th token: the set probes both the SceneWalk
supervision and how much of a long description reaches the router.

The run is stage 1.5's data path (``--stage 1.5``: descriptions as router queries) over a frozen tiny random
CLIP, retrieval only (connector + router, no LLM), at lr 1e-3 (the router starts from scratch here; stage 1.5's
2e-5 assumes a stage-1 router). Held-out top-1: for every description of the held-out videos, is the router's
best segment its scene? (chance = 1 / scenes per video.)

    python training/synthetic_scenewalk.py                         # ~2-4 minutes on 2 busy CPU cores
    python training/synthetic_scenewalk.py --router-text-tokens 77 # the router text cut at CLIP's length

Only library calls shared with earlier salova versions are used, so the same script measures them too.
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

try:  # run as a file (sys.path[0] is training/) or imported as training.synthetic_scenewalk
    from synthetic_needle import FPS, LOOKS, write_video
except ImportError:  # pragma: no cover
    from training.synthetic_needle import FPS, LOOKS, write_video

FILLER_TEXT = "a dog catching a frisbee in the park what color is the car in the video when does the speaker derive the"


def description(look: str, prefix_words: int) -> str:
    words = FILLER_TEXT.split(" ")
    prefix = " ".join(words[i % len(words)] for i in range(prefix_words))
    return f"{prefix} the {look} scene.".strip()


def make_split(
    root: Path, name: str, n: int, scenes: int, prefix_words: int, rng: np.random.Generator, looks_per_video: int = 0
) -> Path:
    """``n`` videos + their SceneWalk JSONL (one description per scene; no scores unless looks repeat).

    ``looks_per_video`` < ``scenes``: scenes repeat a few looks, so a description fits every scene of its look;
    the records then carry the description x scene ``v2t`` matrix (1 for the same look, 0 otherwise), as the
    parquet release does.
    """
    (root / name).mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(n):
        if 0 < looks_per_video < scenes:
            palette = list(rng.choice(list(LOOKS), size=looks_per_video, replace=False))
            looks = [palette[0]] * (scenes - looks_per_video + 1) + palette[1:]  # one look fills most scenes
            looks = [looks[i] for i in rng.permutation(scenes)]
        else:
            looks = list(rng.choice(list(LOOKS), size=scenes, replace=False))
        durations = [int(d) for d in rng.integers(2, 5, size=scenes)]  # 2-4 s per scene
        video = f"{name}/{name}{k:03d}.mp4"
        write_video(root / video, looks, durations, rng)
        starts = np.cumsum([0, *durations[:-1]]).tolist()
        rows, conversations = [], []
        for look, s, d in zip(looks, starts, durations, strict=True):
            rows.append({"start_frame": s * FPS, "end_frame": (s + d) * FPS, "start_time": float(s),
                         "end_time": float(s + d)})
            conversations += [{"from": "human", "value": f"<video>\nDescribe the video from {s} to {s + d} s."},
                              {"from": "gpt", "value": description(look, prefix_words)}]
        record = {"id": f"{name}{k:03d}", "video": video, "total_time": float(sum(durations)),
                  "clip_num": scenes, "scenes": rows, "conversations": conversations}
        if len(set(looks)) < scenes:
            record["v2t"] = [[float(a == b) for b in looks] for a in looks]
        lines.append(record)
    path = root / f"{name}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@torch.inference_mode()
def description_top1(checkpoint: Path, data: Path) -> tuple[float, float]:
    """Held-out top-1 over every (video, description): the router's best segment is a scene the description
    fits (its own, or one of the same look); and mean average precision of the router's ranking."""
    from salova.models import Salova
    from salova.train.data import assign_scenes, parse_scenes, sample_frames
    from salova.train.forward import SalovaForTraining

    model = Salova.from_pretrained(checkpoint, load_llm=False).eval()
    wrap = SalovaForTraining(model).eval()
    fit = (model.encoder.preprocess.size, model.encoder.preprocess.crop)
    hits = total = 0
    precision = []
    for line in data.read_text().splitlines():
        rec = json.loads(line)
        video = sample_frames(data.parent / rec["video"], 1.0, fit=fit)
        groups = assign_scenes(video, parse_scenes(rec["scenes"]))
        order = np.concatenate(groups)
        seg = torch.from_numpy(np.concatenate([np.full(len(g), k) for k, g in enumerate(groups)]))
        feats = model.encoder.encode_frames(video.frames[order])
        routing, _ = wrap.compress(feats.patches, feats.cls, seg, len(groups))
        fits = np.asarray(rec.get("v2t") or np.eye(len(groups))) > 0.5  # [description, scene]
        for scene, turn in enumerate(rec["conversations"][1::2]):
            scores = model.score(routing, turn["value"])
            hits += bool(fits[scene, int(scores.argmax())])
            ranked = fits[scene, scores.argsort(descending=True).numpy()]
            precision.append(float((np.cumsum(ranked) / np.arange(1, len(ranked) + 1))[ranked].mean()))
            total += 1
    return hits / total, float(np.mean(precision))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, deleted)")
    ap.add_argument("--train-videos", type=int, default=64)
    ap.add_argument("--test-videos", type=int, default=32)
    ap.add_argument("--scenes", type=int, default=5, help="scenes (descriptions) per video; chance = 1/scenes")
    ap.add_argument("--prefix-words", type=int, default=60, help="shared words before the telling ones")
    ap.add_argument("--looks-per-video", type=int, default=0,
                    help="< scenes: scenes repeat looks and the data carries v2t rows (many positives per row)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--router-text-tokens", type=int, help="cut the router's text at this many tokens (ablation)")
    ap.add_argument("--set", dest="train_set", action="append", default=[], metavar="KEY=VALUE",
                    help="any training option (as `salova train --set`)")
    args = ap.parse_args(argv)

    import salova.models.encoder as encoder_module
    from salova.tiny import make_tiny_encoder, make_tiny_salova
    from salova.train import resolve_config, train
    from salova_cli.train_cmd import parse_set  # the same KEY=VALUE syntax as `salova train --set`

    if args.router_text_tokens and hasattr(encoder_module, "ROUTER_TEXT_TOKENS"):
        encoder_module.ROUTER_TEXT_TOKENS["clip"] = args.router_text_tokens
    torch.set_num_threads(1)  # tiny models are latency-bound
    t0 = time.perf_counter()
    work = args.work or Path(tempfile.mkdtemp(prefix="salova-scenewalk-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    split = dict(scenes=args.scenes, prefix_words=args.prefix_words, rng=rng, looks_per_video=args.looks_per_video)
    train_data = make_split(work, "train", args.train_videos, **split)
    test_data = make_split(work, "test", args.test_videos, **split)
    encoder = make_tiny_encoder(work / "encoder", "clip", seed=args.seed)
    init = make_tiny_salova(work / "init", encoder, None, seed=args.seed)
    enc = encoder_module.VisionTextEncoder.from_pretrained(encoder)
    tokens = len(enc.tokenizer(description("checkered", args.prefix_words))["input_ids"])
    before, ap_before = description_top1(init, test_data)
    cfg = resolve_config("1.5", None, {
        "data": [str(train_data)], "output": str(work / "trained"), "init": str(init),
        "train_parts": ["connector", "router"], "lr": args.lr, "global_batch_size": args.global_batch,
        "micro_batch_size": args.global_batch, "epochs": args.epochs, "feature_cache": True, "num_workers": 0,
        "save_every": 0, "seed": args.seed, "progress": sys.stderr.isatty(), **parse_set(args.train_set),
    })
    t1 = time.perf_counter()
    result = train(cfg)
    t_train = time.perf_counter() - t1
    after, ap_after = description_top1(work / "trained", test_data)
    log = [json.loads(x) for x in (work / "trained" / "train_log.jsonl").read_text().splitlines()]
    report = {
        "chance": 1 / args.scenes, "held_out_top1_before": before, "held_out_top1_after": after,
        "held_out_map_before": ap_before, "held_out_map_after": ap_after, "looks_per_video": args.looks_per_video,
        "description_tokens": tokens, "router_text_tokens": args.router_text_tokens, "train_set": args.train_set,
        "train_videos": args.train_videos, "test_videos": args.test_videos, "scenes": args.scenes,
        "steps": result.steps, "epochs": args.epochs, "router_queries": getattr(result, "router_queries", None),
        "sim_loss_first": log[0]["sim_loss"], "sim_loss_last": log[-1]["sim_loss"],
        "steps_with_sim_loss": sum(x["sim_loss"] is not None for x in log),
        "seconds_train": round(t_train, 1), "seconds_total": round(time.perf_counter() - t0, 1),
    }
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
