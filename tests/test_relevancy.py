"""Label-conditioned relevancy (Chefer, Gur & Wolf, ICCV 2021): a faithful forward, true gradients, maps that
point at the evidence."""

import types

import pytest
import torch
from PIL import Image

from clipdemo.core import zeroshot as engine
from clipdemo.core.inside import (Explanation, _logit, explain, image_relevancy, prompt_words, relevance, text_forward,
                                  text_relevancy, vision_forward)
from clipdemo.core.labels import LabelSet, fill
from clipdemo.core.model import build_random

PROMPTS = ["a photo of a lion", "a photo of a tiger", "a photo of a bridge", "a blurry photo of a red car"]


def _pixels(loaded, seed=0):
    r = loaded.config.image_resolution
    return torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(seed))


def _unit(x):
    return x / x.norm()


@pytest.mark.parametrize("which", ["tiny_loaded", "vitb32"])
def test_the_captured_forward_is_encode_image_and_encode_text(which, request):
    loaded = request.getfixturevalue(which)
    m, px = loaded.model, _pixels(loaded)
    with torch.no_grad():
        feats, maps = vision_forward(m, px)
        assert torch.allclose(feats, m.encode_image(px), atol=1e-5, rtol=0)
        assert len(maps) == loaded.config.vision_layers
        t = (loaded.config.image_resolution // loaded.config.vision_patch_size) ** 2 + 1
        assert maps[0].shape == (1, m.visual.transformer.resblocks[0].attn.num_heads, t, t)
        assert torch.allclose(maps[0].sum(-1), torch.ones(()), atol=1e-5)  # rows are distributions
        tokens = engine.tokenize(PROMPTS)
        for i in range(len(PROMPTS)):
            got, tmaps = text_forward(m, tokens[i:i + 1])
            assert torch.allclose(got, m.encode_text(tokens[i:i + 1]), atol=1e-5, rtol=0)
            assert torch.all(tmaps[0][0, :, 0, 1:] == 0)  # the causal mask: the first token sees only itself


def test_relevancy_is_finite_non_negative_and_positive_for_the_best_label(vitb32):
    m, px = vitb32.model, _pixels(vitb32, seed=3)
    with torch.no_grad():
        texts = torch.nn.functional.normalize(m.encode_text(engine.tokenize(PROMPTS)).float(), dim=-1)  # [4, D]
        logits = 100 * _unit(m.encode_image(px)[0].float()) @ texts.T
    best = int(logits.argmax())
    rel, logit, feature = image_relevancy(m, px, texts[best])
    assert rel.shape == (7, 7) and torch.isfinite(rel).all() and (rel >= 0).all()
    assert logit == pytest.approx(float(logits[best]), abs=1e-3)
    assert float(rel.sum()) > 0
    words, _ = text_relevancy(m, engine.tokenize([PROMPTS[best]]), feature)
    assert words.shape == (len(PROMPTS[best].split()),) and torch.isfinite(words).all() and (words >= 0).all()
    for lab in range(len(PROMPTS)):  # every label's map
        r, _, _ = image_relevancy(m, px, texts[lab])
        assert torch.isfinite(r).all() and (r >= 0).all()


def test_relevance_accumulates_from_the_identity():
    eye = relevance([torch.full((1, 2, 3, 3), 1 / 3)], [torch.zeros(1, 2, 3, 3)])  # no gradient: nothing added
    assert torch.equal(eye, torch.eye(3))
    a = torch.softmax(torch.randn(1, 2, 3, 3), dim=-1)
    g = torch.randn(1, 2, 3, 3)
    cam = (g * a).clamp(min=0).mean(dim=1)[0]
    assert torch.allclose(relevance([a, a], [g, g]), (torch.eye(3) + cam) @ (torch.eye(3) + cam), atol=1e-6)


@pytest.mark.parametrize("tower", ["vision", "text"])
def test_autograd_matches_finite_differences_for_one_attention_map(tiny_loaded, tower):
    """The similarity's gradient with respect to one layer's attention probabilities, in float64."""
    m = build_random(tiny_loaded.config, seed=5).double()
    for mod in m.modules():  # clip's LayerNorm computes in float32; plain LayerNorm keeps float64 for the check
        if isinstance(mod, torch.nn.LayerNorm):
            mod.forward = types.MethodType(torch.nn.LayerNorm.forward, mod)
    g = torch.Generator().manual_seed(0)
    other = _unit(torch.randn(tiny_loaded.config.embed_dim, generator=g, dtype=torch.float64))
    x = (torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64) if tower == "vision"
         else engine.tokenize(["a photo of a lion"]))
    forward = vision_forward if tower == "vision" else text_forward

    def sim(probe):
        return _logit(forward(m, x, probe=probe)[0], other)

    with torch.enable_grad():
        feats, maps = forward(m, x)  # the weights require grad: the probabilities are in the graph
        layer = 1
        grad = torch.autograd.grad(_logit(feats, other), maps)[layer]  # what the relevancy uses
    a = maps[layer].detach()
    d = torch.randn(a.shape, generator=g, dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        fd = (sim({layer: a + eps * d}) - sim({layer: a - eps * d})) / (2 * eps)
        assert float(sim({layer: a})) == pytest.approx(float(_logit(feats, other)), rel=1e-12)  # the probe is exact
    analytic = float((grad * d).sum())
    assert abs(analytic) > 1e-6
    assert float(fd) == pytest.approx(analytic, rel=1e-3)


def test_a_model_whose_evidence_is_one_patch_has_its_map_peak_there(squares):
    """A tiny model trained (here, 300 steps) to tell a red square from a blue one anywhere on a 4x4 grid: for
    the 'red' text, the relevancy map's maximum is the red square's patch, wherever it is."""
    assert squares.loss < 0.05
    peaks = [int(image_relevancy(squares.model, squares.image(pos, squares.RED)[None], squares.texts[0])[0]
                 .flatten().argmax()) for pos in range(16)]
    assert peaks == list(range(16))


def test_explain_brings_both_towers_together(tiny_loaded):
    m, px = tiny_loaded.model, _pixels(tiny_loaded)
    with torch.no_grad():
        text = _unit(m.encode_text(engine.tokenize([fill("a photo of a {}", "lion")]))[0].float())
    ex = explain(m, px, text, engine.tokenize(["a photo of a lion"]))
    assert isinstance(ex, Explanation) and ex.image.shape == (2, 2) and ex.words.shape == (5,)
    assert prompt_words("a photo of a lion") == ["a", "photo", "of", "a", "lion"]  # the words ex.words scores
    with torch.no_grad():
        assert ex.logit == pytest.approx(float(100 * _unit(m.encode_image(px)[0].float()) @ text), abs=1e-4)


def test_the_service_caches_maps_and_makes_the_versus_map(tiny_loaded):
    from clipdemo.core.words import Refusal
    from clipdemo.serving.service import ZeroShot

    zs = ZeroShot(tiny_loaded)
    image = Image.effect_mandelbrot((64, 64), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    label_set = LabelSet.of(("cat", "dog", "lion"), ("a photo of a {}",))
    lion = zs.inside.explain(image, "img", "lion", label_set)
    assert zs.inside.explain(image, "img", "lion", label_set) is lion  # cached
    cat = zs.inside.explain(image, "img", "cat", label_set)
    versus = zs.inside.explain(image, "img", "lion", label_set, versus="cat")
    assert torch.equal(versus.image, (lion.image - cat.image).clamp(min=0)) and not torch.equal(versus.image, lion.image)
    assert versus.words is lion.words and versus.logit == lion.logit  # only the image map is a difference
    assert zs.inside.explain(image, "img", "lion", label_set, versus="lion") is lion
    with pytest.raises(Refusal, match="'tiger' is not one of the active labels"):
        zs.inside.explain(image, "img", "tiger", label_set)
