"""`--html`: one self-contained page with the answer, the score timeline, a thumbnail per moment and links
that open the video at the moment; rendered by headless Chromium to check the thumbnails show."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from salova.retrieval.render import hms
from tests.answerers.conftest import COLOURS
from tests.cli_helpers import cli


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(page, out, tmp_path, size=(1100, 1400)) -> np.ndarray:
    """Headless Chromium's PNG of ``page``, as [H, W, 3] uint8."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={size[0]},{size[1]}",
           f"--screenshot={out}", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(out).convert("RGB"))


def test_html_report_for_one_question(capsys, tmp_path, indexed, server):
    video, index = indexed
    page = tmp_path / "report" / "answer.html"
    page.parent.mkdir()
    run = cli(capsys, "ask", video.path, "when is the blue scene?", "--index", index, "--answerer", server.url,
              "--top-k", "3", "--html", page, "--json")
    assert run.code == 0, run.err
    out = run.json()
    doc = page.read_text()
    assert "when is the blue scene?" in doc and out["answer"] in doc and "answered by openai:stub-vl@" in doc
    assert "<svg" in doc and doc.count("<rect") == len(COLOURS)  # one bar per segment
    assert doc.count('<img src="data:image/jpeg;base64,') == 3
    assert not re.search(r'src="(?!data:)', doc)  # self-contained: every image is inline
    rel = os.path.relpath(video.path, page.parent)  # the link works wherever the folder pair moves
    for m in out["moments"]:
        assert f'href="{rel}#t={m["start_s"]:g}"' in doc and hms(m["start_s"]) in doc


@pytest.mark.skipif(chromium() is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_report_thumbnails_show_in_a_browser(capsys, tmp_path, indexed, server):
    video, index = indexed
    page = tmp_path / "r.html"
    run = cli(capsys, "ask", video.path, "green?", "--index", index, "--answerer", server.url, "--top-k", "3",
              "--html", page, "--json")
    assert run.code == 0, run.err
    shot = screenshot(page, tmp_path / "r.png", tmp_path).astype(int)
    for m in run.json()["moments"]:
        colour = np.array(COLOURS[m["segment"]])
        near = (np.abs(shot - colour).max(axis=2) < 40).sum()
        assert near > 200 * 100, f"moment #{m['rank']}: its scene colour {tuple(colour)} covers {near} px"
    others = [c for i, c in enumerate(COLOURS) if i not in {m["segment"] for m in run.json()["moments"]}]
    for colour in others:  # only the moments' frames are shown
        assert (np.abs(shot - np.array(colour)).max(axis=2) < 40).sum() < 500


def test_html_report_for_a_batch_lists_every_question_and_failed_lines(capsys, tmp_path, indexed, server):
    video, index = indexed
    qfile = tmp_path / "q.jsonl"
    qfile.write_text(json.dumps({"video": str(video.path), "question": "red?"}) + "\nnot json\n"
                     + json.dumps({"video": str(video.path), "question": "green?"}) + "\n")
    page = tmp_path / "batch.html"
    run = cli(capsys, "ask", "--questions", qfile, "--index", index, "--answerer", server.url, "--html", page)
    assert run.code == 1  # the bad line
    doc = page.read_text()
    assert "<h2>red?</h2>" in doc and "<h2>green?</h2>" in doc and "line 2: not JSON" in doc
    assert doc.count("<svg") == 2 and len([r for r in server.requests if r["method"] == "POST"]) == 2
