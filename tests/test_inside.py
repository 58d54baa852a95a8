"""Introspection against the model itself: shapes, parameter counts, faithful attention capture, tokens."""

import pytest
import torch

from clipdemo.core import zeroshot as engine
from clipdemo.core.architecture import config_card, parameter_split, parameter_tree, tower_summary
from clipdemo.core.inside import cls_attention_map, label_similarity, patch_grid, prompt_tokens, rollout, vision_attention
from clipdemo.core.labels import LabelSet
from clipdemo.core.words import Refusal
from clipdemo.serving.service import ZeroShot


def _pixels(loaded, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = loaded.config.image_resolution
    return torch.randn(1, 3, r, r, generator=g)


def test_vitb32_figures_match_the_model(vitb32):
    m = vitb32.model
    total = sum(p.numel() for p in m.parameters())
    split = parameter_split(vitb32)
    assert split["total"] == total == 151_277_313
    assert split["vision"] + split["text"] + split["logit_scale"] == total and split["logit_scale"] == 1
    assert split["vision"] == sum(p.numel() for p in m.visual.parameters())
    conv = m.visual.conv1
    assert tuple(conv.weight.shape) == (768, 3, 32, 32) and conv.stride == (32, 32)
    card = config_card(vitb32)
    assert card["vision"] == {"width": 768, "layers": 12, "heads": 12, "patch_size": 32, "input_resolution": 224,
                              "grid": "7x7", "tokens": 50,
                              "patch_embedding": "Conv2d(3, 768, kernel=32, stride=32, bias=False)"}
    assert card["text"] == {"width": 512, "layers": 12, "heads": 8, "context_length": 77, "vocab_size": 49408}
    assert card["embed_dim"] == 512


def test_torchinfo_shapes_and_totals(vitb32):
    vis = tower_summary(vitb32, "visual", 2)
    shapes = {r[0].strip("\u2003"): r[2] for r in vis.rows}
    assert shapes["VisionTransformer (VisionTransformer)"] == "1x512"
    assert shapes["conv1 (Conv2d)"] == "1x768x7x7"  # 7x7 = 49 patches
    assert shapes["ln_pre (LayerNorm)"] == "1x50x768"  # + class token = 50 tokens
    assert shapes["transformer (Transformer)"] == "50x1x768"
    assert shapes["ln_post (LayerNorm)"] == "1x768"
    assert vis.total_params == parameter_split(vitb32)["vision"]
    txt = tower_summary(vitb32, "text", 1)
    shapes = {r[0]: r[2] for r in txt.rows}
    assert shapes["token_embedding (Embedding)"] == "1x77x512" and shapes["transformer (Transformer)"] == "77x1x512"
    assert shapes["TextTower (TextTower)"] == "1x512"
    assert txt.total_params == parameter_split(vitb32)["text"]
    assert "Total params: 63,428,096" in txt.text
    with pytest.raises(ValueError, match="Depth must be between 1 and 4"):
        tower_summary(vitb32, "text", 5)


def test_text_tower_module_equals_encode_text(tiny_loaded):
    from clipdemo.core.architecture import TextTower
    tokens = engine.tokenize(["a photo of a cat", "a dog"])
    with torch.inference_mode():
        assert torch.allclose(TextTower(tiny_loaded.model)(tokens), tiny_loaded.model.encode_text(tokens), atol=1e-6)


def test_parameter_tree_totals(vitb32):
    rows = {i: (parent, n) for i, _, parent, n in parameter_tree(vitb32)}
    assert rows["CLIP"] == ("", 151_277_313)
    assert rows["CLIP / vision tower"][1] == 87_849_216 and rows["CLIP / text tower"][1] == 63_428_096
    assert rows["CLIP / vision tower / conv1"][1] == 768 * 3 * 32 * 32
    for node, (parent, n) in rows.items():  # every parent's count is the sum of its children's
        children = [c for c, (p, _) in rows.items() if p == node]
        if children:
            assert sum(rows[c][1] for c in children) == n, node
    assert len([c for c, (p, _) in rows.items() if p == "CLIP / vision tower" and "block" in c]) == 12


@pytest.mark.parametrize("which", ["tiny_loaded", "vitb32"])
def test_attention_capture_is_faithful(which, request):
    loaded = request.getfixturevalue(which)
    model, pixels = loaded.model, _pixels(loaded)
    seen = []
    hooks = [b.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
             for b in model.visual.transformer.resblocks]
    try:
        with torch.inference_mode():
            ref = model.encode_image(pixels)
    finally:
        for hk in hooks:
            hk.remove()
    trace = vision_attention(model, pixels)
    c = loaded.config
    assert trace.attentions.shape == (c.vision_layers, c.vision_heads, c.vision_tokens, c.vision_tokens)
    assert torch.allclose(trace.attentions.sum(dim=-1), torch.ones(()), atol=1e-5)  # rows are distributions
    assert (trace.attentions >= 0).all()
    assert len(trace.block_outputs) == len(seen) == c.vision_layers
    for mine, theirs in zip(trace.block_outputs, seen):
        assert (mine - theirs).abs().max().item() <= 1e-5
    assert (trace.features - ref).abs().max().item() <= 1e-5


def test_captured_weights_reproduce_the_attention_output(tiny_loaded):
    """softmax(QK^T)V with the captured weights gives the block's own attention output."""
    model = tiny_loaded.model
    trace = vision_attention(model, _pixels(tiny_loaded, 3))
    block = model.visual.transformer.resblocks[1]
    x = trace.block_outputs[0]  # input of block 1: [T, 1, width]
    with torch.inference_mode():
        h = block.ln_1(x)
        qkv = torch.nn.functional.linear(h, block.attn.in_proj_weight, block.attn.in_proj_bias)  # [T, 1, 3*width]
        v = qkv.chunk(3, dim=-1)[2][:, 0]  # [T, width]
        heads = block.attn.num_heads
        v = v.reshape(v.shape[0], heads, -1).transpose(0, 1)  # [heads, T, head_dim]
        mixed = trace.attentions[1] @ v  # [heads, T, head_dim]
        out = block.attn.out_proj(mixed.transpose(0, 1).reshape(v.shape[1], -1))  # [T, width]
        ref = block.attn(h, h, h, need_weights=False)[0][:, 0]
    assert torch.allclose(out, ref, atol=1e-5)


def test_rollout_and_cls_maps(vitb32):
    trace = vision_attention(vitb32.model, _pixels(vitb32, 1))
    r = rollout(trace.attentions)
    assert r.shape == (50, 50) and torch.allclose(r.sum(dim=-1), torch.ones(50), atol=1e-5)
    uniform = torch.full((2, 3, 5, 5), 0.2)
    assert torch.allclose(rollout(uniform, residual=0.0), torch.full((5, 5), 0.2))
    identity = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.allclose(rollout(identity), torch.eye(5))
    amap = cls_attention_map(trace)
    assert amap.shape == (7, 7) and torch.allclose(amap.flatten(), r[0, 1:])
    assert torch.equal(cls_attention_map(trace, 4, 7).flatten(), trace.attentions[4, 7, 0, 1:])
    assert torch.allclose(cls_attention_map(trace, 0, None).flatten(), trace.attentions[0].mean(0)[0, 1:])
    with pytest.raises(ValueError, match="Layer must be 1..12, not 13"):
        cls_attention_map(trace, 12, None)


def test_patch_grid_matches_token_order():
    grid = patch_grid(224, 32)
    assert len(grid) == 49 and grid[0] == (0, 0, 0, 0, 0) and grid[8] == (8, 1, 1, 32, 32)
    assert grid[-1] == (48, 6, 6, 192, 192)


def test_prompt_tokens_match_clip_tokenize():
    toks = prompt_tokens("a photo of a lion")
    ids = engine.tokenize(["a photo of a lion"])[0]
    assert [t.token_id for t in toks] == ids[: len(toks)].tolist() and (ids[len(toks):] == 0).all()
    assert [t.text for t in toks] == ["<|startoftext|>", "a", "photo", "of", "a", "lion", "<|endoftext|>"]
    assert toks[-1].role == "end" and toks[-1].position == int(ids.argmax())
    with pytest.raises(Refusal, match="CLIP reads at most 77"):
        prompt_tokens(" ".join(["x"] * 80))


def test_label_similarity(tiny_loaded):
    feats = ZeroShot(tiny_loaded).text_features(LabelSet.of(("cat", "dog", "car"), ("a photo of a {}",)))
    sim = label_similarity(feats)
    assert sim.shape == (3, 3) and torch.allclose(sim.diagonal(), torch.ones(3), atol=1e-5)
    assert torch.allclose(sim, sim.T)
