"""The speech channel, measured: transcription speed, spoken-needle retrieval, and what speech adds to indexing.

Videos are made here: colour scenes of ``--scene`` seconds, one espeak-ng sentence spoken in each at a random
offset (``apt-get install espeak-ng``). Every sentence is then asked about by a hand-written paraphrase (no
shared content word with the sentence where avoidable) through the same path users run (``Session.ask``, fused
visual + speech, top-1). The visual channel is a tiny random CLIP: it says nothing about speech, the worst
case for fusion. Real weights for speech: the packaged Whisper tiny.en (int8, CPU) and all-MiniLM-L6-v2.

    python benchmarks/bench_speech.py              # 4 videos x 5 sentences; writes its docs/benchmarks.md section
    python benchmarks/bench_speech.py --no-docs    # prints only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks._common import machine_info, machine_line, md_table, record_run, section_markers, write_docs_section

DOC_START, DOC_END = section_markers("bench_speech", "benchmarks/bench_speech.py")

# (spoken sentence, the question asked about it)
NEEDLES = [
    ("The chef slices fresh tomatoes for the summer salad.", "When does someone cut up vegetables for a meal?"),
    ("Our train to Berlin leaves the station at noon.", "When is the railway departure time mentioned?"),
    ("Tomorrow it will rain heavily in the mountains.", "When is the weather forecast given?"),
    ("The doctor says you should drink more water every day.", "When is the advice about staying hydrated?"),
    ("My grandmother planted roses in her garden last spring.", "When does someone talk about flowers being grown?"),
    ("The football team won the championship after extra time.", "When is the sports victory described?"),
    ("Please remember to lock the front door before you leave.", "When is the reminder about home security?"),
    ("The museum opens a new exhibition about ancient Egypt.", "When is the history display announced?"),
    ("I lost my keys somewhere in the parking lot.", "When does the speaker say something went missing?"),
    ("The concert was so loud that my ears were ringing.", "When is the noisy music event mentioned?"),
    ("We adopted a small puppy from the animal shelter.", "When do they talk about getting a new dog?"),
    ("The price of gasoline went up again this week.", "When is the cost of fuel discussed?"),
    ("She finished writing her first novel in three months.", "When is the book the author completed mentioned?"),
    ("The airplane landed safely despite the strong wind.", "When does the flight arrive?"),
    ("Our teacher gave us a difficult math exam today.", "When is the hard school test mentioned?"),
    ("The bakery on the corner sells warm bread every morning.", "When is the shop with fresh loaves described?"),
    ("He broke his leg while skiing in the Alps.", "When is the winter sports injury told?"),
    ("The river flooded the village after the storm.", "When does the water overflow into the town?"),
    ("Scientists discovered a new planet outside our solar system.", "When is the astronomy finding reported?"),
    ("The company will hire fifty new engineers next year.", "When are the job openings announced?"),
]
# Written after the fusion constants were calibrated on NEEDLES: the held-out check of that calibration.
HELD_OUT = [
    ("The kids built a huge sandcastle on the beach.", "When do children play at the seaside?"),
    ("My laptop battery died in the middle of the meeting.", "When does the computer run out of power?"),
    ("The mayor promised to repair the old bridge soon.", "When does the politician talk about fixing infrastructure?"),
    ("Fresh snow covered the whole city this morning.", "When is the wintry weather described?"),
    ("The orchestra rehearsed the symphony for five hours.", "When do the musicians practise?"),
    ("Our neighbours are painting their house bright yellow.", "When is the colour of the home next door mentioned?"),
    ("The hospital opened a new wing for sick children.", "When is the medical building for kids announced?"),
    ("He forgot his passport and missed the flight.", "When does someone fail to board because of a document?"),
    ("The farmers harvested the wheat before the rain came.", "When are the crops collected?"),
    ("A thief stole a bicycle from the school yard.", "When is the theft reported?"),
]
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200)]


def make_videos(folder: Path, per_video: int, scene_s: float, seed: int, needles=NEEDLES, name="talk") -> list[dict]:
    """Videos of ``per_video`` scenes, one needle sentence each; returns the ground truth per sentence."""
    from salova.testing.speech import SPEECH_RATE, speech_track
    from salova.testing.videos import make_video

    rng = np.random.default_rng(seed)
    truth = []
    for v in range(len(needles) // per_video):
        spoken = []
        for j in range(per_video):
            start = round(j * scene_s + float(rng.uniform(0.5, scene_s - 5.0)), 2)
            sentence, question = needles[v * per_video + j]
            spoken.append((start, sentence))
            truth.append({"video": folder / f"{name}{v}.mp4", "start_s": start, "segment": j, "question": question,
                          "held_out": needles is HELD_OUT})
        audio = speech_track(spoken, per_video * scene_s)
        make_video(folder / f"{name}{v}.mp4", [(scene_s, COLOURS[j % len(COLOURS)]) for j in range(per_video)],
                   fps=10, audio=audio, audio_rate=SPEECH_RATE)
    return truth


def index_seconds(videos: list[Path], encoder: Path, index: Path, speech: bool) -> float:
    from salova.pipeline.run import IndexOptions, run_index

    t0 = time.perf_counter()
    summary = run_index(videos, IndexOptions(index_dir=index, encoder=str(encoder), progress=False, speech=speech))
    assert summary.failed == 0, summary.failures
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-video", type=int, default=5, help="sentences (and scenes) per video")
    ap.add_argument("--scene", type=float, default=12.0, help="scene length, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    from salova.retrieval import Session
    from salova.speech.audio import load_audio
    from salova.speech.models import default_whisper
    from salova.speech.transcribe import Transcriber
    from salova.tiny import make_tiny_encoder

    t_all, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="salova-speech-bench-") as work:
        work = Path(work)
        truth = make_videos(work, args.per_video, args.scene, args.seed)
        truth += make_videos(work, args.per_video, args.scene, args.seed + 1, HELD_OUT, "held")
        videos = sorted({t["video"] for t in truth})
        hours = len(videos) * args.per_video * args.scene / 3600
        encoder = make_tiny_encoder(work / "clip", "clip")

        # 1. transcription speed alone (model loaded once, audio decoded before timing)
        t0 = time.perf_counter()
        transcriber = Transcriber(default_whisper())
        load_s = time.perf_counter() - t0
        audio = [load_audio(v) for v in videos]
        t0 = time.perf_counter()
        lines = sum(len(transcriber.transcribe_samples(a).lines) for a in audio)
        transcribe_s = time.perf_counter() - t0
        audio_s = sum(len(a) for a in audio) / 16000

        # 2. what speech adds to `salova index` (fresh indexes, same videos)
        visual_s = index_seconds(videos, encoder, work / "visual", speech=False)
        both_s = index_seconds(videos, encoder, work / "both", speech=True)

        # 3. spoken-needle retrieval through Session.ask (fused visual + speech)
        hits, held_hits, at_errors, channels, misses = 0, 0, [], [], []
        with Session(work / "both", encoder=str(encoder), top_k=3, answer=False, progress=False) as session:
            for t in truth:
                result = session.ask(t["video"], t["question"])
                best = min(result.moments, key=lambda m: m.rank)
                ok = best.segment == t["segment"]
                hits += ok and not t["held_out"]
                held_hits += ok and t["held_out"]
                channels.append(best.channel)
                if ok:
                    at_errors.append(abs(best.at_s - t["start_s"]))
                if not ok or abs(best.at_s - t["start_s"]) > 1.0:
                    misses.append({"question": t["question"], "segment": t["segment"], "got": best.segment,
                                   "at_s": round(best.at_s, 2), "start_s": t["start_s"], "channel": best.channel,
                                   "said": best.transcript})
    command = "python benchmarks/bench_speech.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {
        "command": command.strip(), "machine": machine_info("cpu"), "videos": len(videos),
        "video_s": round(hours * 3600, 1), "audio_s": round(audio_s, 1), "lines": lines, "sentences": len(truth),
        "whisper_load_s": round(load_s, 2), "transcribe_s": round(transcribe_s, 2),
        "realtime_factor": round(audio_s / transcribe_s, 1),
        "index_visual_s": round(visual_s, 2), "index_visual_speech_s": round(both_s, 2),
        "speech_added_s_per_hour": round((both_s - visual_s) / hours, 1),
        "calibration": sum(not t["held_out"] for t in truth), "held_out": sum(t["held_out"] for t in truth),
        "top1": round(hits / sum(not t["held_out"] for t in truth), 3), "top1_hits": hits,
        "top1_held_out": round(held_hits / sum(t["held_out"] for t in truth), 3), "top1_held_out_hits": held_hits,
        "at_s_error_median": round(float(np.median(at_errors)), 2) if at_errors else None,
        "at_s_error_max": round(float(max(at_errors)), 2) if at_errors else None,
        "speech_channel_top1": channels.count("speech"), "misses": misses,
        "seconds": round(time.perf_counter() - t_all, 1), "load_before": load_before, "load_after": os.getloadavg(),
    }
    record_run("speech", report)
    print(json.dumps(report, indent=2, default=str))
    if not args.no_docs:
        write_docs_section(DOC_START, DOC_END, docs_section(report))
    return 0


def docs_section(r: dict) -> str:
    rows = [
        ["transcription speed (Whisper tiny.en, int8, VAD, word times)",
         f"**{r['realtime_factor']}x real time** ({r['audio_s']} s of audio in {r['transcribe_s']} s; "
         f"model load {r['whisper_load_s']} s)"],
        ["spoken-needle top-1, held-out set (paraphrased questions, fused visual + speech)",
         f"**{r['top1_held_out']:.2f}** ({r['top1_held_out_hits']} of {r['held_out']})"],
        ["spoken-needle top-1, the set the fusion constants were calibrated on",
         f"{r['top1']:.2f} ({r['top1_hits']} of {r['calibration']}); over both sets the speech channel found "
         f"{r['speech_channel_top1']} of the {r['sentences']} best moments"],
        ["`at_s` error of the hits (start of the spoken sentence)",
         f"median {r['at_s_error_median']} s, max {r['at_s_error_max']} s (a hit the visual channel won keeps "
         "its best frame's time)"],
        ["index time speech adds", f"**{r['speech_added_s_per_hour']:.0f} s per hour of video** "
         f"({r['index_visual_speech_s']} s with speech vs {r['index_visual_s']} s without, {r['video_s']} s of "
         "video, speech in about a quarter of it; includes loading Whisper and MiniLM once)"],
    ]
    return "\n".join([
        "## Speech channel: transcription speed, spoken-needle retrieval, indexing cost",
        "",
        f"{r['videos']} videos of {r['sentences'] // r['videos']} colour scenes, one espeak-ng sentence each, every "
        "sentence asked about by a paraphrase (`Session.ask`, top-1 = the sentence's segment). The visual channel "
        "is a tiny random CLIP (no signal: the worst case for fusion). Speech: the packaged Whisper tiny.en and "
        "all-MiniLM-L6-v2, 2 CPU threads shared with other jobs.",
        "",
        md_table(["what", "measured"], rows),
        "",
        "Synthetic speech (espeak-ng) is clearer than most recordings; real-world speed depends on how much of a "
        "video is speech (VAD skips the rest) and on the Whisper size.",
        "",
        f"Command: `{r['command']}`  ",
        f"Machine: {machine_line(r['machine'])}; load average {r['load_before'][0]:.1f} before, "
        f"{r['load_after'][0]:.1f} after",
    ])


if __name__ == "__main__":
    sys.exit(main())
