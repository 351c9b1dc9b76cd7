"""An OpenAI-compatible chat server answers: the request carries the moments' frames as base64 JPEG data URLs.

The server is the stdlib stub in ``stub_server.py`` (loopback; records every request): no real server (Ollama,
llama.cpp, vLLM) installs here without a download or a long build.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from salova.retrieval.render import hms
from tests.answerers.conftest import FPS, read_barcode
from tests.cli_helpers import cli


def decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_endpoint_gets_the_moments_frames_as_data_urls(capsys, indexed, server):
    video, index = indexed
    run = cli(capsys, "ask", video.path, "when is the blue scene?", "--index", index, "--answerer", server.url,
              "--answerer-model", "qwen2.5vl:3b", "--top-k", "2", "--max-frames", "4", "--json")
    assert run.code == 0, run.err
    out = run.json()
    first = min(out["moments"], key=lambda m: m["start_s"])
    assert out["answer"] == f"It happens at [{hms(first['start_s'])}]."  # cites a given moment: kept as written
    assert out["answerer"] == f"openai:qwen2.5vl:3b@{server.url}"
    (post,) = [r for r in server.requests if r["method"] == "POST"]
    assert post["path"] == "/v1/chat/completions"
    body = post["body"]
    assert body["model"] == "qwen2.5vl:3b" and body["temperature"] == 0 and body["max_tokens"] == 256
    system, user = body["messages"]
    assert system["role"] == "system" and "Cite" in system["content"]
    images = [decode_data_url(p["image_url"]["url"]) for p in user["content"] if p["type"] == "image_url"]
    expected = [round(t * FPS) for m in out["answer_moments"] for t in m["frame_times"]]
    assert len(expected) == 4 and [read_barcode(im) for im in images] == expected
    text = "".join(p["text"] for p in user["content"] if p["type"] == "text")
    assert "Question: when is the blue scene?" in text


def test_endpoint_model_defaults_to_the_first_listed_and_uncited_answers_get_the_times(capsys, indexed, server):
    video, index = indexed
    server.content = "It is red, at 00:09:59."  # a time no moment covers
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", server.url, "--json", "-k", "2")
    assert run.code == 0, run.err
    out = run.json()
    assert out["answerer"].startswith("openai:stub-vl@")
    times = ", ".join(f"[{hms(m['start_s'])}-{hms(m['end_s'])}]" for m in out["moments"])
    assert out["answer"] == f"It is red, at 00:09:59.\n(Moments: {times})"
    assert [r["path"] for r in server.requests] == ["/v1/models", "/v1/chat/completions"]


def test_endpoint_error_is_one_line_and_batch_goes_on(capsys, tmp_path, indexed, server):
    video, index = indexed
    server.fail = True
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", server.url, "--answerer-model", "m")
    assert run.code == 1
    assert run.err.strip().splitlines() == [
        f"salova: error: {server.url}/chat/completions: HTTP 500 Internal Server Error: "
        '{"error": {"message": "model crashed"}}'
    ]
    qfile = tmp_path / "q.txt"
    qfile.write_text("red?\ngreen?\n")
    batch = cli(capsys, "ask", video.path, "--questions", qfile, "--index", index, "--answerer", server.url,
                "--answerer-model", "m")
    assert batch.code == 1
    lines = [json.loads(ln) for ln in batch.out.splitlines()]
    assert [ln["line"] for ln in lines] == [1, 2] and all("HTTP 500" in ln["error"] for ln in lines)


def test_unreachable_endpoint_is_one_line(capsys, indexed):
    video, index = indexed
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", "http://127.0.0.1:9/v1")
    assert run.code == 1 and "Traceback" not in run.err
    assert run.err.startswith("salova: error: http://127.0.0.1:9/v1: cannot reach the server")
