"""Evaluation numbers against hand computations; the image-feature store is reused across settings."""

import pytest
import torch

from clipdemo import backends
from clipdemo.data import open_cifar100
from clipdemo.evaluate import evaluate, score, select_indices
from clipdemo.presets import CIFAR100_CLASSES, CIFAR100_CLASSES_PAPER, CIFAR_TEMPLATES
from clipdemo.service import ZeroShot

CLASSES = tuple("abcdefg")  # 7 classes, so top-5 is a real test


def _unit(*weights):
    v = torch.tensor(weights + (0.0,) * (7 - len(weights)))
    return v / v.norm()


def test_metrics_equal_a_hand_computation():
    text = torch.eye(7)  # class c's text feature is the unit vector e_c
    # Each image's ranking of the classes is set by the weights of its feature on the e_c.
    images = torch.stack([
        _unit(1.0, 0.5),                         # true a: top-1 a                 -> right
        _unit(0.9, 0.5, 0.0, 0.0, 0.0, 0.0, 0.1),  # true b: top-1 a, b 2nd          -> wrong, top-5 hit
        _unit(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.0),  # true g: g ranked last (7th)     -> wrong, top-5 miss
        _unit(0.0, 0.0, 1.0),                      # true c: right
        _unit(0.0, 0.9, 0.5),                      # true c: top-1 b, c 2nd          -> wrong, top-5 hit
    ])
    targets = torch.tensor([0, 1, 6, 2, 2])
    r = score(images, targets, text, setting="single", classes=CLASSES)
    assert r.predicted.tolist() == [0, 0, 5, 2, 1]
    assert r.top1 == pytest.approx(2 / 5) and r.top5 == pytest.approx(4 / 5)
    assert r.per_class == [1.0, 0.0, 0.5, None, None, None, 0.0]
    assert r.mean_per_class == pytest.approx((1.0 + 0.0 + 0.5 + 0.0) / 4)
    expected = torch.zeros(7, 7, dtype=torch.long)
    for t, p in [(0, 0), (1, 0), (6, 5), (2, 2), (2, 1)]:
        expected[t, p] += 1
    assert torch.equal(r.confusion, expected)
    assert sorted(r.confused_pairs(10)) == [(1, 0, 1), (2, 1, 1), (6, 5, 1)]
    probs = (100 * images @ text.T).softmax(-1)
    worst = r.worst_mistakes(3)
    assert [w[0] for w in worst] == sorted([1, 2, 4], key=lambda i: -probs[i].max().item())
    assert worst[0][3] == pytest.approx(probs[worst[0][0]].max().item())
    d = r.as_dict()
    assert d["per_class"]["d"] is None and d["predictions"][1] == {"index": 1, "true": "b", "predicted": "a",
                                                                   "probability": pytest.approx(probs[1, 0].item())}


def test_select_indices():
    targets = [i % 10 for i in range(100)]
    assert select_indices(targets, "first", 7) == list(range(7))
    assert select_indices(targets, "all") == list(range(100))
    strat = select_indices(targets, "per-class", 3, seed=1)
    assert len(strat) == 30 and all(sum(targets[i] == c for i in strat) == 3 for c in range(10))
    assert strat == select_indices(targets, "per-class", 3, seed=1) != select_indices(targets, "per-class", 3, seed=2)
    with pytest.raises(ValueError, match="between 1 and 10 images per class, not 11"):
        select_indices(targets, "per-class", 11)
    with pytest.raises(ValueError, match="Unknown subset 'some'"):
        select_indices(targets, "some")


class _Counting:
    def __init__(self, inner):
        self.inner, self.images = inner, 0

    def __call__(self, pixels):
        self.images += pixels.shape[0]
        return self.inner.encode(pixels)


def test_evaluate_reuses_image_features_and_matches_score(tiny_loaded, cifar_root):
    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    counter = _Counting(zs.encoder)
    zs.use_encoder(backends.ImageEncoder("counting", counter, True), "counting")
    idx = select_indices(list(data.dataset.targets), "per-class", 1)
    single, ens = evaluate(zs, data, idx, ("single", "cifar18"), batch_size=32, workers=0)
    assert counter.images == 100 and single.n == ens.n == 100
    # the two heads differ; the ensemble head is the normalised mean of normalised per-template features
    head1 = zs.text_features(CIFAR100_CLASSES, ("a photo of a {}",))
    head18 = zs.text_features(CIFAR100_CLASSES, CIFAR_TEMPLATES)
    assert not torch.allclose(head1, head18, atol=1e-3)
    per = torch.stack([zs.text_features(CIFAR100_CLASSES, (t,)) for t in CIFAR_TEMPLATES], dim=1)  # [C, 18, D]
    mean = per.mean(dim=1)
    assert torch.allclose(head18, mean / mean.norm(dim=-1, keepdim=True), atol=1e-5)
    # metrics equal a plain loop over the same features
    feats = zs.cifar.gather(idx)
    hand = [int((100 * f @ head1.T).argmax()) == data.target(i) for f, i in zip(feats, idx)]
    assert single.top1 == pytest.approx(sum(hand) / len(hand))
    # new labels: only the text side is recomputed, no image forward pass
    again = evaluate(zs, data, idx, ("single",), classes=CIFAR100_CLASSES_PAPER, workers=0)[0]
    assert counter.images == 100 and again.classes == CIFAR100_CLASSES_PAPER
    with pytest.raises(ValueError, match="one label per CIFAR-100 class"):
        evaluate(zs, data, idx, ("single",), classes=("cat", "dog"), workers=0)


def test_evaluate_cli(tiny_ckpts, cifar_root, tmp_path, monkeypatch, capsys):
    import json

    from clipdemo.cli import main

    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    out = tmp_path / "results.json"
    assert main(["evaluate", "--weights", str(tiny_ckpts["state_dict"]), "--limit", "60", "--templates", "both",
                 "--workers", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "setting" in text and "top-1" in text and "single" in text and "cifar18" in text
    results = json.loads(out.read_text())
    assert [r["setting"] for r in results["results"]] == ["single", "cifar18"]
    assert results["results"][0]["images"] == 60 and len(results["results"][0]["predictions"]) == 60
    with pytest.raises(SystemExit) as exc:  # argparse: the subset options are mutually exclusive
        main(["evaluate", "--limit", "5", "--per-class", "2"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["evaluate", "--weights", "random:tiny", "--per-class", "500"]) == 2
    assert "images per class" in capsys.readouterr().err
