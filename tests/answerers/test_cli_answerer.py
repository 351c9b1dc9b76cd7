"""`ask --answerer` on the command line: which answerer answers, and one-line usage errors."""

from __future__ import annotations

import pytest

from tests.cli.test_index_command import library
from tests.cli_helpers import cli


def test_focusfast_stays_the_default_with_a_trained_checkpoint(capsys, tmp_path, salova_dir, llama_dir):
    videos = library(tmp_path / "videos", n=1, scenes=3)
    index = tmp_path / "idx"
    assert cli(capsys, "index", videos[0].path, "--index", index, "--model", salova_dir, "--quiet").code == 0
    default = cli(capsys, "ask", videos[0].path, "what happens?", "--index", index, "--json", "--max-new-tokens", "2")
    assert default.code == 0, default.err
    out = default.json()
    assert out["answerer"] == "focusfast" and out["mode"] == "router" and isinstance(out["answer"], str)
    assert [m["rank"] for m in out["answer_moments"]] == [m["rank"] for m in out["moments"]]
    other = cli(capsys, "ask", videos[0].path, "what happens?", "--index", index, "--json", "--max-new-tokens", "2",
                "--answerer", llama_dir)
    assert other.code == 0, other.err
    assert other.json()["answerer"] == f"text-lm:{llama_dir}" and other.json()["mode"] == "router"


@pytest.mark.parametrize(("args", "message"), [
    (["--answerer-model", "m"], "--answerer-model needs --answerer URL"),
    (["--answerer", "http://127.0.0.1:9/v1", "--no-answer"], "give either --answerer or --no-answer, not both"),
    (["--answerer", "{tmp}/model.txt"],
     "--answerer {tmp}/model.txt: expected a model directory, a .gguf file or a URL"),
    (["--answerer", "{tmp}/empty"], "--answerer {tmp}/empty: no config.json or .gguf file in this directory"),
    (["--answerer", "{tmp}/llama", "--answerer-model", "m"],
     "--answerer-model only applies to an endpoint URL (http://host:port/v1)"),
    (["--max-frames", "0"], "--max-frames must be >= 1, got 0"),
])
def test_answerer_usage_errors_are_one_line(capsys, tmp_path, indexed, llama_dir, args, message):
    video, index = indexed
    (tmp_path / "model.txt").write_text("not a model")
    (tmp_path / "empty").mkdir()
    (tmp_path / "llama").symlink_to(llama_dir)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    run = cli(capsys, "ask", video.path, "red?", "--index", index, *args)
    assert run.code == 2
    assert run.err.splitlines() == [f"salova: error: {message.replace('{tmp}', str(tmp_path))}"]


def test_unknown_hub_id_is_one_line(capsys, indexed):
    video, index = indexed
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", "nobody/no-such-model-xyz")
    assert run.code == 2 and len(run.err.splitlines()) == 1
    assert run.err.startswith("salova: error: --answerer nobody/no-such-model-xyz: not a model directory, .gguf file")
