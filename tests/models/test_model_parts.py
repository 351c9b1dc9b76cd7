"""SALOVA model parts on tiny random models (CPU, offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salova.errors import CheckpointError
from salova.models import (
    ConnectorConfig,
    FocusFastLM,
    RouterConfig,
    Salova,
    SegmentRouter,
    STConnector,
    VisionTextEncoder,
    select_focus,
    similarity_loss,
    tokens_kept,
    visual_tokens,
    zero_shot_scores,
)


def frames(n, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------- encoder
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_encoder_shapes(kind, clip_dir, siglip_dir):
    enc = VisionTextEncoder.from_pretrained(clip_dir if kind == "clip" else siglip_dir)
    out = enc.encode_frames(frames(3))
    p = 4 if kind == "clip" else 9  # 4x4 -> 2x2 (avg pool); 5x5 -> 3x3 (bilinear)
    assert enc.tokens_per_frame == p
    assert out.patches.shape == (3, p, enc.vision_width)
    assert out.cls.shape == (3, enc.vision_width)
    assert out.joint.shape == (3, enc.joint_width)
    torch.testing.assert_close(out.joint.norm(dim=-1), torch.ones(3))
    text = enc.encode_text(["when does the dog run", "red"])
    assert text.tokens.shape[0] == 2 and text.tokens.shape[2] == enc.text_width
    assert text.mask.dtype == torch.bool and text.mask.shape == text.tokens.shape[:2]
    assert text.joint.shape == (2, enc.joint_width)


def test_encoder_clip_pooling_matches_manual_avg_pool(clip_dir):
    enc = VisionTextEncoder.from_pretrained(clip_dir)
    x = frames(1)
    hidden = enc.model.vision_model(pixel_values=enc.pixel_values(x), output_hidden_states=True).hidden_states[-2]
    grid = hidden[0, 1:].reshape(4, 4, -1)
    expected = grid[:2, :2].mean(dim=(0, 1))  # top-left 2x2 block
    torch.testing.assert_close(enc.encode_frames(x).patches[0, 0], expected, atol=1e-5, rtol=1e-5)


def test_encoder_missing_path_is_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere"):
        VisionTextEncoder.from_pretrained(tmp_path / "nowhere")


def test_encoder_rejects_non_clip(llama_dir):
    with pytest.raises(CheckpointError, match="CLIP or SigLIP"):
        VisionTextEncoder.from_pretrained(llama_dir)


# ---------------------------------------------------------------- connector
def tiny_connector(**kw):
    cfg = dict(dim=16, depth=2, heads=2, dim_head=8, num_latents=6, tokens_per_frame=4, max_frames=8)
    cfg.update(kw)
    return STConnector(ConnectorConfig(**cfg))


def test_connector_shapes_and_padding_invariance():
    conn = tiny_connector().eval()
    patches = torch.randn(2, 5, 4, 16)
    cls_ = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    routing, latents = conn(patches, mask, cls_)
    assert routing.shape == (2, 16) and latents.shape == (2, 6, 16)
    # The padded segment gives the same result as the same segment alone, unpadded.
    r0, l0 = conn(patches[:1, :3], mask[:1, :3], cls_[:1, :3])
    torch.testing.assert_close(routing[:1], r0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(latents[:1], l0, atol=1e-5, rtol=1e-5)


def test_connector_eval_deterministic_and_no_drop():
    conn = tiny_connector(max_token_drop=0.7, token_drop_ref_len=10).eval()
    x, m, c = torch.randn(1, 8, 4, 16), torch.ones(1, 8, dtype=torch.bool), torch.randn(1, 8, 16)
    a = conn(x, m, c)
    b = conn(x, m, c)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_connector_temporal_table_interpolates_for_long_segments():
    conn = tiny_connector(max_frames=4).eval()
    routing, latents = conn(torch.randn(1, 10, 4, 16), torch.ones(1, 10, dtype=torch.bool), torch.randn(1, 10, 16))
    assert latents.shape == (1, 6, 16) and torch.isfinite(latents).all()


# Worked by hand from ratio = max_drop * min(seq_len / ref, 1), kept = max(1, int(seq_len * (1 - ratio))):
# 40 * (1 - 0.7 * 0.4) = 28.8 -> 28; 400 * (1 - 0.7) = 120; 3 * (1 - 0.4 * 0.03) = 2.964 -> 2; 1 * 0.55 -> 0 -> 1.
@pytest.mark.parametrize("seq_len,max_drop,ref,expected",
                         [(40, 0.7, 100, 28), (400, 0.7, 100, 120), (3, 0.4, 100, 2), (1, 0.9, 2, 1)])
def test_token_drop_keeps_the_hand_worked_count(seq_len, max_drop, ref, expected):
    assert tokens_kept(seq_len, max_drop, ref) == expected
    conn = tiny_connector(max_token_drop=max_drop, token_drop_ref_len=ref, tokens_per_frame=1).train()
    media = torch.arange(seq_len, dtype=torch.float32)[None, :, None].expand(1, seq_len, 16).clone()
    mask = torch.ones(1, seq_len, dtype=torch.bool)
    kept, kept_mask = conn.drop_tokens(media, mask)
    assert int(kept_mask.sum()) == expected
    positions = kept[0, kept_mask[0], 0]
    assert torch.all(positions[1:] > positions[:-1])  # time order kept, no duplicates


def test_token_drop_per_segment_in_a_padded_batch():
    conn = tiny_connector(max_token_drop=0.5, token_drop_ref_len=20, tokens_per_frame=1).train()
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, :10] = True
    mask[1] = True
    media = torch.randn(2, 20, 16)
    _, kept_mask = conn.drop_tokens(media, mask)
    # 10 * (1 - 0.5 * 0.5) = 7.5 -> 7; 20 * (1 - 0.5) = 10
    assert kept_mask.sum(1).tolist() == [7, 10]


# ---------------------------------------------------------------- router + loss
def tiny_router():
    return SegmentRouter(RouterConfig(d_model=16, ffn_dim=32, routing_dim=16, text_dim=12, max_segments=8,
                                      max_text_positions=16))


def test_router_shapes_masks_and_long_inputs():
    router = tiny_router().eval()
    routing, text = torch.randn(2, 20, 16), torch.randn(2, 30, 12)  # beyond both position tables
    tmask = torch.ones(2, 30, dtype=torch.bool)
    smask = torch.ones(2, 20, dtype=torch.bool)
    smask[0, 15:] = False
    scores = router(routing, text, tmask, torch.randn(2, 12), smask)
    assert scores.shape == (2, 20)
    assert torch.isinf(scores[0, 15:]).all() and torch.isfinite(scores[1]).all()
    # |cos| <= 1, times exp(1.0) initial scale
    assert scores[1].abs().max() <= np.e + 1e-5


def test_similarity_loss_margin_term():
    labels = torch.tensor([1, 1, 0, 0, 0], dtype=torch.bool)
    good = torch.tensor([3.0, 2.5, -1.0, -2.0, 2.2])  # every positive beats every negative by > 0.2
    for seed in range(5):
        _, margin = similarity_loss(good, labels, generator=torch.Generator().manual_seed(seed))
        assert margin.item() == 0.0
    # Margin values for scores that violate the margin: tests/models/test_similarity_margin_values.py.
    bce, _ = similarity_loss(good, labels)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(good, labels.float())
    torch.testing.assert_close(bce, expected)


def test_similarity_loss_without_negatives_is_bce_only():
    bce, margin = similarity_loss(torch.tensor([1.0, 2.0]), torch.tensor([1, 1]))
    assert margin.item() == 0.0 and bce.item() > 0


# ---------------------------------------------------------------- whole model
def segment_batch(model, n_segments=7, frames_per=3):
    enc = model.encoder
    feats = enc.encode_frames(frames(n_segments * frames_per))
    p, d = feats.patches.shape[1:]
    patches = feats.patches.reshape(n_segments, frames_per, p, d)
    cls_ = feats.cls.reshape(n_segments, frames_per, d)
    mask = torch.ones(n_segments, frames_per, dtype=torch.bool)
    return patches, mask, cls_


def test_end_to_end_shapes_and_backward_reaches_every_part(salova_dir):
    model = Salova.from_pretrained(salova_dir).train()
    patches, mask, cls_ = segment_batch(model)
    routing, latents = model.connector(patches, mask, cls_)  # [n, d], [n, l, d]
    text = model.encoder.encode_text(["when is the red scene"])
    scores = model.router(routing[None], text.tokens, text.mask, text.sentence)[0]
    assert scores.shape == (7,)
    focus = select_focus(scores.detach(), model.config.focusfast.top_k)
    visual = visual_tokens(model.projector, latents, routing, focus)
    embeds, labels = model.llm.build_inputs("when is the red scene", visual, answer="at the start")
    out = model.llm(embeds, labels=labels)
    sim_bce, sim_margin = similarity_loss(scores, torch.tensor([0, 1, 0, 0, 0, 0, 0]))
    (out.loss + sim_bce + sim_margin).backward()
    for name, part in model.trainable_parts().items():
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"no gradient reached {name}"


def test_focusfast_feeds_k_times_latents_plus_n_tokens_in_time_order(salova_dir):
    model = Salova.from_pretrained(salova_dir).eval()
    n, L = 9, model.config.connector.num_latents
    k = model.config.focusfast.top_k
    latents = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, L, model.config.connector.dim)
    routing = torch.randn(n, model.config.connector.dim)
    scores = torch.tensor([0.1, 5.0, 0.2, 4.0, 0.0, 3.0, 2.0, 1.0, 0.3])
    focus = select_focus(scores, k)
    assert focus.tolist() == [1, 3, 5, 6, 7]  # top-5 by score, in time order
    ident = torch.nn.Identity()
    vis = visual_tokens(ident, latents, routing, focus)
    assert vis.shape == (k * L + n, model.config.connector.dim)
    assert vis[: k * L, 0].reshape(k, L)[:, 0].tolist() == [1.0, 3.0, 5.0, 6.0, 7.0]
    torch.testing.assert_close(vis[k * L :], routing)
    projected = visual_tokens(model.projector, latents, routing, focus)
    embeds, labels = model.llm.build_inputs("q", projected)
    text_only, _ = model.llm.build_inputs("q", projected[:0])  # same prompt, zero visual tokens
    assert embeds.shape[1] == text_only.shape[1] + k * L + n  # exactly K*L + N visual tokens added
    assert (labels == -100).all()


@pytest.mark.parametrize("which", ["llama", "qwen"])
def test_llm_without_video_matches_bare_model(which, llama_dir, qwen_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = llama_dir if which == "llama" else qwen_dir
    lm = FocusFastLM.from_pretrained(str(path))
    bare = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    question = "what color is the car"
    prompt, _ = lm.render(question, with_video=False)
    ids = tok(prompt, add_special_tokens=not lm.has_template, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        embeds, _ = lm.build_inputs(question, None)
        ours = lm(embeds).logits
        ref = bare(input_ids=ids).logits
    torch.testing.assert_close(ours, ref, atol=0, rtol=0)


def test_answer_generates_text(salova_dir):
    model = Salova.from_pretrained(salova_dir).eval()
    d, L = model.config.connector.dim, model.config.connector.num_latents
    out = model.answer("what happens", torch.randn(6, d), torch.randn(6, L, d), torch.randn(6), max_new_tokens=4)
    assert isinstance(out, str)


def test_checkpoint_round_trip_reproduces_outputs(salova_dir, tmp_path):
    a = Salova.from_pretrained(salova_dir, load_llm=False).eval()
    patches, mask, cls_ = segment_batch(a)
    with torch.no_grad():
        ra, la = a.connector(patches, mask, cls_)
        sa = a.score(ra, "the red scene")
    a.save_pretrained(tmp_path / "copy")
    b = Salova.from_pretrained(tmp_path / "copy", load_llm=False).eval()
    with torch.no_grad():
        rb, lb = b.connector(patches, mask, cls_)
        sb = b.score(rb, "the red scene")
    for x, y in [(ra, rb), (la, lb), (sa, sb)]:
        torch.testing.assert_close(x, y, atol=0, rtol=0)
    assert a.weights_digest() == b.weights_digest()
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["connector"]["num_latents"] == 8


def test_checkpoint_errors_name_the_path(salova_dir, tmp_path):
    with pytest.raises(CheckpointError, match="missing-ckpt"):
        Salova.from_pretrained(tmp_path / "missing-ckpt")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((salova_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="broken"):
        Salova.from_pretrained(broken, load_llm=False)
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text("{not json")
    (half / "model.safetensors").write_bytes((salova_dir / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="half"):
        Salova.from_pretrained(half, load_llm=False)


def test_paper_defaults():
    from salova.models import SalovaConfig

    c = SalovaConfig()
    assert (c.connector.num_latents, c.connector.dim, c.connector.depth, c.connector.heads) == (256, 1024, 2, 2)
    assert (c.router.layers, c.router.heads, c.router.d_model, c.router.dropout) == (2, 1, 1024, 0.0)
    assert c.focusfast.top_k == 5 and c.connector.tokens_per_frame == 144
    router = SegmentRouter(RouterConfig(d_model=8, ffn_dim=8, routing_dim=8, text_dim=8))
    assert isinstance(router.layers[0].ffn[1], torch.nn.PReLU)


def test_zero_shot_scores_are_cosines():
    seg = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(zero_shot_scores(seg, np.array([0, 2.0, 0])), [0, 1, 0])


def test_clip_sentence_feature_is_the_pooled_eos_and_the_router_scores_against_it(clip_dir):
    enc = VisionTextEncoder.from_pretrained(clip_dir)
    texts = ["red", "when does the dog run in the park"]
    text = enc.encode_text(texts)
    ids = enc.tokenize(texts)
    with torch.no_grad():
        pooled = enc.model.text_model(**ids).pooler_output  # final-layer EOS after the final LayerNorm
    torch.testing.assert_close(text.sentence, pooled)
    # The router prepends the sentence feature as text token 0 and scores against it.
    router = tiny_router().eval()
    routing = torch.randn(1, 4, 16)
    tokens, mask = torch.randn(1, 5, 12), torch.ones(1, 5, dtype=torch.bool)
    a = router(routing, tokens, mask, tokens[:, 3])
    b = router(routing, tokens, mask, tokens[:, 0])
    assert not torch.allclose(a, b)


def test_router_layer_is_the_reference_layer():
    """Positions on queries and keys only, text-only keys with the sentence first, FF width d_model, an
    outer residual; checked against a hand-written reference forward pass."""
    torch.manual_seed(0)
    router = SegmentRouter(RouterConfig(d_model=16, routing_dim=16, text_dim=12, max_segments=8,
                                        max_text_positions=16, layers=2)).eval()
    assert router.layers[0].ffn[0].out_features == 16 and not hasattr(router, "global_token")
    routing, tokens = torch.randn(2, 5, 16), torch.randn(2, 6, 12)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    sentence = torch.randn(2, 12)

    def positions(module, x):
        return module.norm(x + module.table.weight[: x.shape[1]][None])

    text = router.text_proj(torch.cat([sentence[:, None], tokens], 1))
    seg = routing
    seg_pos, text_pos = positions(router.seg_pos, seg), positions(router.text_pos, text)
    pad = torch.cat([torch.zeros(2, 1, dtype=torch.bool), ~mask], 1)
    for layer in router.layers:
        attn = layer.attn(seg + seg_pos, text + text_pos, text, key_padding_mask=pad)[0]
        x = seg + attn
        x = layer.norm2(x + layer.ffn(layer.norm1(x)))
        seg = x + seg
    expected = torch.nn.functional.cosine_similarity(seg, text[:, :1], dim=-1) * np.e
    torch.testing.assert_close(router(routing, tokens, mask, sentence), expected, atol=1e-5, rtol=1e-5)
    # Padded text tokens change nothing.
    longer = torch.cat([tokens, torch.randn(2, 3, 12)], 1)
    lmask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    torch.testing.assert_close(router(routing, longer, lmask, sentence), expected, atol=1e-5, rtol=1e-5)


def test_a_long_question_reaches_the_router_untruncated(clip_dir, siglip_dir):
    for path, native in ((clip_dir, 77), (siglip_dir, 64)):
        enc = VisionTextEncoder.from_pretrained(path)
        words = ["when", "does", "the", "red", "dog", "run", "in", "the", "park"]
        question = ""
        while len(enc.tokenizer(question)["input_ids"]) < 300:  # a 300-token question
            question += words[len(question.split()) % len(words)] + " "
        question = question.strip()
        n = len(enc.tokenizer(question)["input_ids"])
        text = enc.encode_text([question])
        assert enc.native_text_len == native and enc.max_text_len >= 512
        assert int(text.mask.sum()) == n and text.tokens.shape[1] >= n
        # The words past the encoder's own length change the router's text, not the zero-shot embedding.
        cut = enc.encode_text([question + " yellow cat"])
        assert not torch.allclose(text.sentence, cut.sentence)
        torch.testing.assert_close(text.joint, cut.joint)
        # A short text in the same batch is encoded as it would be alone.
        both = enc.encode_text(["red", question])
        alone = enc.encode_text(["red"])
        torch.testing.assert_close(both.sentence[:1], alone.sentence, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.joint[:1], alone.joint, atol=1e-5, rtol=1e-5)


def test_text_position_extension_is_deterministic_and_saved(clip_dir, tmp_path):
    a, b = VisionTextEncoder.from_pretrained(clip_dir), VisionTextEncoder.from_pretrained(clip_dir)
    wa = a.model.text_model.embeddings.position_embedding.weight
    torch.testing.assert_close(wa, b.model.text_model.embeddings.position_embedding.weight, atol=0, rtol=0)
    assert wa.shape[0] == 512 and a.fingerprint() == b.fingerprint()
    a.save_pretrained(tmp_path / "enc")
    c = VisionTextEncoder.from_pretrained(tmp_path / "enc")
    assert c.native_text_len == 77 and c.max_text_len == 512
    torch.testing.assert_close(c.model.text_model.embeddings.position_embedding.weight, wa, atol=0, rtol=0)


def test_old_format_checkpoints_are_a_clear_error(salova_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(salova_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["format_version"] = 1
    (old / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="format-1 SALOVA checkpoint.*SR-Router"):
        Salova.from_pretrained(old, load_llm=False)
