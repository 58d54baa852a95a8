"""Evaluation numbers against hand computations; the image-feature store is reused across settings."""

import pytest
import torch

from clipdemo.core.labels import CIFAR100_CLASSES, CIFAR100_CLASSES_PAPER, CIFAR_TEMPLATES, LabelSet
from clipdemo.core.words import Progress, Refusal
from clipdemo.io.cifar import open_cifar100
from clipdemo.serving import backends
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.evaluate import Evaluation, Report, evaluate, run, score

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


def test_which_images_an_evaluation_takes():
    targets = [i % 10 for i in range(100)]
    assert Evaluation("first", 7).indices(targets) == list(range(7))
    assert Evaluation("all").indices(targets) == list(range(100))
    strat = Evaluation("per-class", 3, seed=1).indices(targets)
    assert len(strat) == 30 and all(sum(targets[i] == c for i in strat) == 3 for c in range(10))
    assert strat == Evaluation("per-class", 3, 1).indices(targets) != Evaluation("per-class", 3, 2).indices(targets)
    with pytest.raises(Refusal, match="K must be between 1 and 10, not 11"):
        Evaluation("per-class", 11).indices(targets)
    with pytest.raises(Refusal, match="N must be a whole number, not 2.5"):
        Evaluation("first", 2.5).indices(targets)
    with pytest.raises(Refusal, match="Unknown subset 'some'"):
        Evaluation("some").indices(targets)
    with pytest.raises(Refusal, match="Unknown templates 'x'; choose one of: single, cifar18, both"):
        Evaluation(templates="x").settings
    assert Evaluation(spelling="cifar100-paper").classes == CIFAR100_CLASSES_PAPER


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
    ev = Evaluation("per-class", 1, templates="both")
    idx = ev.indices(data.targets)
    single, ens = evaluate(zs, data, ev, batch_size=32).results
    assert counter.images == 100 and single.n == ens.n == 100
    # the two heads differ; the ensemble head is the normalised mean of normalised per-template features
    head1 = zs.text_features(LabelSet.of(CIFAR100_CLASSES, ("a photo of a {}",)))
    head18 = zs.text_features(LabelSet.of(CIFAR100_CLASSES, CIFAR_TEMPLATES))
    assert not torch.allclose(head1, head18, atol=1e-3)
    per = torch.stack([zs.text_features(LabelSet.of(CIFAR100_CLASSES, (t,))) for t in CIFAR_TEMPLATES], dim=1)
    mean = per.mean(dim=1)
    assert torch.allclose(head18, mean / mean.norm(dim=-1, keepdim=True), atol=1e-5)
    # metrics equal a plain loop over the same features
    feats = zs.cifar.gather(idx)
    hand = [int((100 * f @ head1.T).argmax()) == data.target(i) for f, i in zip(feats, idx)]
    assert single.top1 == pytest.approx(sum(hand) / len(hand))
    # new labels: only the text side is recomputed, no image forward pass
    again = evaluate(zs, data, Evaluation("per-class", 1, templates="single", spelling="cifar100-paper"))
    assert counter.images == 100 and again.encoded == 0 and again.rate is None
    assert again.results[0].classes == CIFAR100_CLASSES_PAPER


class FakeClock:
    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step  # every reading is `step` seconds after the last
        return self.now


def test_the_run_yields_its_progress_per_chunk_then_the_report(tiny_loaded, cifar_root):
    """One generator for the tab and the CLI: its chunking is the caller's, and so is the rate's clock."""
    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    steps = list(run(zs, data, Evaluation("first", 40, templates="single"), chunk=16, batch_size=8,
                     clock=FakeClock(0.5)))
    *progress, report = steps
    assert all(isinstance(s, Progress) for s in progress) and isinstance(report, Report)
    assert [s.done for s in progress] == [16, 32, 40] and {s.total for s in progress} == {40}  # every 16, and the end
    assert progress[0].what.key == "eval_encoding" and str(progress[0].what).startswith("encoding images: 16/40")
    assert report.encoded == 40 and report.stopped is None and report.results[0].n == 40
    assert report.rate == pytest.approx(report.results[0].images_per_s) and report.rate > 0


def test_the_run_stops_at_its_time_limit_keeping_what_it_encoded(tiny_loaded, cifar_root):
    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    # Each clock reading is a minute later: the limit of 150 s passes after the second batch of 8.
    *progress, report = run(zs, data, Evaluation("first", 40), batch_size=8, time_limit_s=150, clock=FakeClock(60))
    assert report.results == [] and report.stopped.key == "eval_stopped" and report.encoded == 8
    assert str(report.stopped) == ("⏹ Stopped at the time limit (2 min) after encoding 8 of 40 new images. They are "
                                   "kept: run again to go on.")
    assert len(zs.cifar) == 8  # what it encoded is kept


def test_evaluate_cli(tiny_ckpts, cifar_root, tmp_path, monkeypatch, capsys):
    import json

    from clipdemo.cli import main
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    out = tmp_path / "results.json"
    assert main(["evaluate", "--weights", str(tiny_ckpts["state_dict"]), "--limit", "60", "--compare", "both",
                 "--workers", "0", "--results", str(out)]) == 0
    text = capsys.readouterr().out
    assert "setting" in text and "top-1" in text and "single" in text and "cifar18" in text
    results = json.loads(out.read_text())
    assert [r["setting"] for r in results["results"]] == ["single", "cifar18"]
    assert results["results"][0]["images"] == 60 and len(results["results"][0]["predictions"]) == 60
    with pytest.raises(SystemExit) as exc:  # argparse: the subset options are mutually exclusive
        main(["evaluate", "--limit", "5", "--per-class", "2"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["evaluate", "--weights", "random:tiny", "--per-class", "500"]) == 2
    assert "error: K must be between 1 and 100, not 500." in capsys.readouterr().err
