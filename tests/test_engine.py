"""The zero-shot math against reference computations: `model.encode_text` and the notebook's code."""

import pytest
import torch
from PIL import Image

from clipdemo import engine
from clipdemo.presets import CIFAR100_CLASSES, CIFAR_TEMPLATES
from clipdemo.prompts import build_prompts
from clipdemo.service import ZeroShot
from clipdemo.notebook import notebook_top5

MIXED = ["a", "a photo of a lion", "a photo of " + " ".join(["very"] * 30) + " big lion",
         " ".join(["x"] * 75)]  # the last one is exactly 77 tokens with start and end


def _image(seed: int, size: int = 64) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy())


@pytest.mark.parametrize("which", ["tiny_loaded", "vitb32"])
def test_short_context_text_encoding_equals_encode_text(which, request):
    loaded = request.getfixturevalue(which)
    tokens = engine.tokenize(MIXED)
    assert int((tokens[-1] != 0).sum()) == 77
    with torch.inference_mode():
        ref = loaded.model.encode_text(tokens)  # [4, D] over the full 77-token context
        ours = engine.encode_text(loaded.model, tokens)
        short = engine.encode_text(loaded.model, tokens[:2])  # L = 7 here, not 77
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= 1e-5
    assert (short - ref[:2]).abs().max().item() <= 1e-5


def test_ensemble_is_normalised_mean_of_normalised_prompt_features(tiny_loaded):
    labels, templates = ("cat", "dog", "lawn_mower"), CIFAR_TEMPLATES[:4]
    model = tiny_loaded.model
    with torch.inference_mode():
        per = model.encode_text(engine.tokenize(build_prompts(labels, templates))).float()  # [12, D]
    per = per / per.norm(dim=-1, keepdim=True)
    mean = per.reshape(3, 4, -1).mean(dim=1)  # [3, D]
    expected = mean / mean.norm(dim=-1, keepdim=True)
    got = engine.text_features(model, labels, templates)
    assert torch.allclose(got, expected, atol=1e-6)
    single = engine.text_features(model, labels, templates[:1])
    assert not torch.allclose(got, single, atol=1e-3)
    assert torch.allclose(got.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_top_k_and_probabilities():
    img = torch.tensor([[1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    probs = engine.probabilities(img, txt)[0]
    z = torch.tensor([100.0, 0.0, 60.0])
    assert torch.allclose(probs, z.softmax(-1))
    assert engine.top_k(probs, ("a", "b", "c"), 2) == [("a", pytest.approx(float(probs[0]))),
                                                       ("c", pytest.approx(float(probs[2])))]
    assert len(engine.top_k(probs, ("a", "b", "c"), 50)) == 3


@pytest.mark.parametrize("which", ["tiny_loaded", "vitb32"])
def test_notebook_parity(which, request):
    loaded = request.getfixturevalue(which)
    zs = ZeroShot(loaded)
    for seed in (0, 1):
        image = _image(seed)
        ref_top, ref_probs = notebook_top5(loaded.model, loaded.preprocess, image, CIFAR100_CLASSES)
        pred = zs.predict(image, CIFAR100_CLASSES, ("a photo of a {}",), k=5)
        assert torch.allclose(torch.tensor(pred.probs), ref_probs.float(), atol=1e-5)
        assert [p for _, p in pred.top] == pytest.approx([p for _, p in ref_top], abs=1e-5)
        assert [lab for lab, _ in pred.top] == [lab for lab, _ in ref_top]


def test_text_feature_cache_key_includes_weights_labels_and_templates(tiny_loaded, vitb32):
    a, b = ZeroShot(tiny_loaded), ZeroShot(vitb32)
    f1 = a.text_features(("cat", "dog"), ("a photo of a {}",))
    assert a.text_features(("cat", "dog"), ("a photo of a {}",)) is f1  # cached
    assert a.text_features(("dog", "cat"), ("a photo of a {}",)) is not f1
    assert torch.allclose(a.text_features(("dog", "cat"), ("a photo of a {}",))[0], f1[1])
    assert not torch.allclose(a.text_features(("cat", "dog"), ("a {}",)), f1)
    assert a.text_key(("cat", "dog"), ("{}",)) != b.text_key(("cat", "dog"), ("{}",))


def test_scores_are_the_cosines_and_their_softmax_and_predictions_carry_the_cosines(tiny_loaded):
    from PIL import Image

    from clipdemo.service import ZeroShot

    img = torch.tensor([[1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    cosines, probs = engine.scores(img, txt)
    assert torch.equal(cosines, torch.tensor([[1.0, 0.0, 0.6]])) and torch.equal(probs, engine.probabilities(img, txt))
    zs, labels = ZeroShot(tiny_loaded), ("red square", "blue circle", "lion")
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    pred = zs.predict(image, labels, ("a photo of a {}",), k=3)
    feat = zs.image_features([image])[0]
    feat = feat / feat.norm()
    ref = feat @ zs.text_features(labels, ("a photo of a {}",)).T  # [3]
    assert [pred.cosine(lab) for lab in labels] == pytest.approx(ref.tolist(), abs=1e-6)
