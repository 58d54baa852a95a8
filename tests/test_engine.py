"""The zero-shot math and the text path the app runs, against independent references: `model.encode_text`
and `model.encode_image` called directly, hand-written softmax, and the notebook's own code."""

import math

import pytest
import torch
from PIL import Image

from clipdemo.core import zeroshot
from clipdemo.core.labels import CIFAR100_CLASSES, CIFAR_TEMPLATES, LabelSet
from clipdemo.fakes import notebook_top5
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import predict_image

MIXED = ["a", "a photo of a lion", "a photo of " + " ".join(["very"] * 30) + " big lion",
         " ".join(["x"] * 75)]  # the last one is exactly 77 tokens with start and end


def _image(seed: int, size: int = 64) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy())


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("which", ["tiny_loaded", "vitb32"])
def test_short_context_text_encoding_equals_encode_text(which, request):
    loaded = request.getfixturevalue(which)
    tokens = zeroshot.tokenize(MIXED)
    assert int((tokens[-1] != 0).sum()) == 77
    with torch.inference_mode():
        ref = loaded.model.encode_text(tokens)  # [4, D] over the full 77-token context
        ours = zeroshot.encode_text(loaded.model, tokens)
        short = zeroshot.encode_text(loaded.model, tokens[:2])  # L = 7 here, not 77
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max().item() <= 1e-5
    assert (short - ref[:2]).abs().max().item() <= 1e-5


def test_the_apps_text_path_is_the_normalised_mean_of_encode_text(tiny_loaded):
    """`ZeroShot.text_features` (chunked model calls, then the ensemble) against `model.encode_text` by hand."""
    labels, templates = ("cat", "dog", "lawn_mower"), CIFAR_TEMPLATES[:4]
    prompts = [t.replace("{}", lab) for lab in labels for t in templates]  # label-major, as documented
    with torch.inference_mode():
        per = _unit(tiny_loaded.model.encode_text(zeroshot.tokenize(prompts)).float())  # [12, D]
    expected = _unit(per.reshape(3, 4, -1).mean(dim=1))  # [3, D]
    zs = ZeroShot(tiny_loaded)
    got = zs.text_features(LabelSet.of(labels, templates))
    assert torch.allclose(got, expected, atol=1e-6)
    single = zs.text_features(LabelSet.of(labels, templates[:1]))
    assert torch.allclose(single, per.reshape(3, 4, -1)[:, 0], atol=1e-6)  # one template: the prompt's own feature
    assert torch.allclose(got.norm(dim=-1), torch.ones(3), atol=1e-6)


def test_the_text_path_is_chunked_the_same_whatever_the_chunk(tiny_loaded):
    """Prompts are encoded in model calls of `text_chunk` prompts: 7 prompts in chunks of 3 give the same."""
    import dataclasses

    from clipdemo.serving.accel import PATHS

    label_set = LabelSet.of([f"thing {i}" for i in range(7)], ["a photo of a {}"])
    whole = ZeroShot(tiny_loaded).text_features(label_set)
    small = ZeroShot(tiny_loaded, path=dataclasses.replace(PATHS["cpu"], text_chunk=3))
    assert torch.allclose(small.text_features(label_set), whole, atol=1e-6)
    assert small.gate_stats.grants[next(iter(small.gate_stats.grants))] == 3  # ceil(7 / 3) model calls


def test_the_one_scorer_top_k_and_probabilities_against_a_hand_softmax():
    from clipdemo.tasks.classify import answer
    img = torch.tensor([[1.0, 0.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    cosines, probs = answer(img, txt)
    assert torch.equal(cosines, torch.tensor([[1.0, 0.0, 0.6]]))
    e = (torch.tensor([100.0, 0.0, 60.0]) - 100).exp()  # softmax(100 * cos), written out (shifted: no overflow)
    assert torch.allclose(probs[0], e / e.sum())
    assert zeroshot.top_k(probs[0], ("a", "b", "c"), 2) == [("a", pytest.approx(float(e[0] / e.sum()))),
                                                             ("c", pytest.approx(float(e[2] / e.sum())))]
    assert len(zeroshot.top_k(probs[0], ("a", "b", "c"), 50)) == 3


def test_notebook_parity(tiny_loaded):
    zs = ZeroShot(tiny_loaded)
    for seed in (0, 1):
        image = _image(seed)
        ref_top, ref_probs = notebook_top5(tiny_loaded.model, tiny_loaded.preprocess, image, CIFAR100_CLASSES)
        pred = predict_image(zs, image, LabelSet.preset("cifar100", "single"), k=5)
        assert torch.allclose(torch.tensor(pred.probs), ref_probs.float(), atol=1e-5)
        assert [p for _, p in pred.top] == pytest.approx([p for _, p in ref_top], abs=1e-5)
        assert [lab for lab, _ in pred.top] == [lab for lab, _ in ref_top]


def test_text_feature_cache_key_is_the_labels_and_templates(tiny_loaded):
    a = ZeroShot(tiny_loaded)
    cat_dog = LabelSet.of(("cat", "dog"), ("a photo of a {}",))
    f1 = a.text_features(cat_dog)
    assert a.text_features(LabelSet.of(("cat", "dog"), ("a photo of a {}",))) is f1  # cached: an equal set
    dog_cat = LabelSet.of(("dog", "cat"), ("a photo of a {}",))
    assert a.text_features(dog_cat) is not f1 and torch.allclose(a.text_features(dog_cat)[0], f1[1])
    assert not torch.allclose(a.text_features(LabelSet.of(("cat", "dog"), ("a {}",))), f1)
    assert a.has_text_features(cat_dog) and not a.has_text_features(LabelSet.of(("cat", "cow"), ("a photo of a {}",)))


def test_predictions_carry_the_cosines_of_encode_image_and_encode_text(tiny_loaded):
    zs, labels = ZeroShot(tiny_loaded), ("red square", "blue circle", "lion")
    image = Image.new("RGB", (40, 40), (200, 30, 30))
    pred = predict_image(zs, image, LabelSet.of(labels, ("a photo of a {}",)), k=3)
    with torch.inference_mode():
        img = _unit(tiny_loaded.model.encode_image(tiny_loaded.preprocess(image)[None]).float())[0]  # [D]
        txt = _unit(tiny_loaded.model.encode_text(zeroshot.tokenize([f"a photo of a {lab}" for lab in labels])).float())
    assert [pred.cosine(lab) for lab in labels] == pytest.approx((txt @ img).tolist(), abs=1e-5)
    cos = txt @ img  # [3], by hand
    probs = [math.exp(100 * c) for c in cos.tolist()]
    order = sorted(range(3), key=lambda i: -probs[i])
    assert [r["label"] for r in pred.rows()] == [labels[i] for i in order]
    assert [r["score"] for r in pred.rows()] == pytest.approx([probs[i] / sum(probs) for i in order], abs=1e-4)
    assert [r["cosine"] for r in pred.rows()] == pytest.approx([cos[i].item() for i in order], abs=1e-5)


def test_the_one_scorer_divides_by_the_temperature_and_mixes_in_examples_by_tip_adapters_formula():
    from clipdemo.core.calibration import tip_adapter
    from clipdemo.tasks.classify import FewShot, answer
    g = torch.Generator().manual_seed(3)
    img = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)  # [B, D]
    txt = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)  # [L, D]
    cos, probs = answer(img, txt, temperature=2.0)
    assert torch.allclose(probs, (50.0 * img @ txt.T).softmax(-1))  # softmax(100 cos / T), T = 2
    keys = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    shots = FewShot(keys, torch.tensor([0, 0, 1, 2, 2]), 1.0, 5.0)
    cos_few, probs_few = answer(img, txt, shots)
    assert torch.equal(cos_few, cos)  # the cosines stay the image-prompt ones
    assert torch.allclose(probs_few, tip_adapter(img, txt, keys, shots.targets, 1.0, 5.0, 1.0).softmax(-1))
    assert not torch.allclose(probs_few, answer(img, txt)[1])
