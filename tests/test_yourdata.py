"""Your own labelled images (issue #26, the parts landed so far): the calibration, threshold and few-shot math
against hand computations and constructed features; reading a labelled zip or folder with its refusals; the
report on the tiny model against a reference computation; the CLI's `evaluate --labelled` and `predict
--threshold`; the API's `threshold`."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipdemo.core import calibration
from clipdemo.core.calibration import best_threshold, ece, fit_temperature, reliability, tip_adapter
from clipdemo.core.labels import CIFAR_TEMPLATES, LabelSet
from clipdemo.serving.service import ZeroShot
from clipdemo.core.words import Refusal
from clipdemo.tasks.classify import Answering
from clipdemo.tasks.yourdata import evaluate_labelled, label_text, read_labelled

ROOT = Path(__file__).resolve().parent.parent
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "dark_blue": (20, 30, 160)}


def probabilities(cosines: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The reference: `[N, C]` cosines -> softmax(100 cos / T) (the package's one scorer is tasks.classify.answer)."""
    return (100 * cosines / temperature).softmax(dim=-1)


# -- the math --------------------------------------------------------------------------------------------------
def test_ece_and_reliability_by_hand():
    conf = torch.tensor([0.95, 0.95, 0.55, 0.55])
    right = torch.tensor([True, False, True, True])
    bins = reliability(conf, right)
    assert [b.count for b in bins] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert bins[9].accuracy == 0.5 and bins[5].accuracy == 1.0
    assert ece(conf, right) == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)


def test_the_fitted_temperature_is_the_likelihoods_minimum_and_mends_an_overconfident_model():
    """Cosines whose softmax(100 cos) says about 95% where the truth is about 70% (a wrong answer's true class is the
    runner-up): the fitted temperature is where the likelihood is best (a fine grid agrees), and it lowers ECE on
    the other half."""
    g = torch.Generator().manual_seed(0)
    n, c = 400, 5
    targets = torch.randint(0, c, (n,), generator=g)
    right = torch.rand(n, generator=g) < 0.7
    shown = torch.where(right, targets, (targets + 1) % c)  # the class the model favours
    cosines = 0.2 + 0.05 * torch.rand(n, c, generator=g)
    cosines[torch.arange(n), shown] += 0.08  # a margin of 8 logits: over-confident
    cosines[torch.arange(n)[~right], targets[~right]] += 0.06  # when wrong, the truth is the runner-up
    a, b = slice(0, 200), slice(200, 400)
    t = fit_temperature(cosines[a], targets[a])
    grid = torch.linspace(math.log(0.05), math.log(20), 2000).exp()
    nll = [float(torch.nn.functional.cross_entropy(100 * cosines[a].double() / x, targets[a])) for x in grid]
    assert t == pytest.approx(float(grid[int(torch.tensor(nll).argmin())]), rel=0.01) and t > 1
    conf = lambda temp: probabilities(cosines[b], temp).max(dim=-1).values  # noqa: E731
    right_b = probabilities(cosines[b]).argmax(dim=-1) == targets[b]
    assert ece(conf(t), right_b) < ece(conf(1.0), right_b) / 2  # 0.20 before, 0.08 after


def test_the_threshold_maximises_balanced_accuracy_by_hand():
    t = best_threshold(torch.tensor([0.30, 0.28, 0.25]), torch.tensor([0.20, 0.26]))
    assert t.cosine == pytest.approx(0.27) and t.fits_kept == pytest.approx(2 / 3) and t.none_refused == 1.0
    assert t.balanced_accuracy == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="both groups"):
        best_threshold(torch.tensor([0.3]), torch.tensor([]))


def test_tip_adapter_is_its_formula_and_nothing_without_examples():
    g = torch.Generator().manual_seed(1)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    f, w, k = unit(4, 8), unit(3, 8), unit(6, 8)
    kt = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = torch.zeros(4, 3)
    for i in range(4):
        for cls in range(3):
            cache = sum(math.exp(-calibration.TIP_BETA * (1 - float(f[i] @ k[m]))) for m in range(6) if kt[m] == cls)
            expected[i, cls] = 100 * float(f[i] @ w[cls]) + calibration.TIP_ALPHA * cache
    assert torch.allclose(tip_adapter(f, w, k, kt), expected, atol=1e-4)
    assert torch.equal(tip_adapter(f, w, k[:0], kt[:0]), 100 * f @ w.T)


def test_constructed_features_few_shot_mends_a_misleading_prompt_and_the_threshold_refuses_the_unseen():
    """Three classes along three axes; class 1's prompt also reads as class 2's images (a misleading prompt), so
    zero-shot calls class 2's images class 1; four examples per class mend it (the cache model's own mechanism,
    with a weight large enough for a prompt this wrong); images along a sixth axis (no class) are refused by the
    threshold learnt from them."""
    g = torch.Generator().manual_seed(2)
    axes = torch.eye(6)
    def images(axis: int, n: int):
        return torch.nn.functional.normalize(axes[axis] + 0.15 * torch.randn(n, 6, generator=g), dim=-1)
    text = torch.nn.functional.normalize(torch.stack([axes[0], axes[1] + 0.4 * axes[2], 0.2 * axes[2] + axes[3]]),
                                         dim=-1)
    test = torch.cat([images(0, 20), images(1, 20), images(2, 20)])  # [60, 6]
    truth = torch.arange(3).repeat_interleave(20)
    keys, key_targets = torch.cat([images(0, 4), images(1, 4), images(2, 4)]), torch.arange(3).repeat_interleave(4)
    zero = (test @ text.T).argmax(dim=-1)
    few = tip_adapter(test, text, keys, key_targets, alpha=30.0, beta=5.0).argmax(dim=-1)
    assert float((zero == truth).float().mean()) < 0.8 < float((few == truth).float().mean())
    unseen = images(5, 20)
    t = best_threshold((test @ text.T).max(dim=-1).values, (unseen @ text.T).max(dim=-1).values)
    assert t.balanced_accuracy > 0.95


# -- reading a labelled set -----------------------------------------------------------------------------------
def _png(colour, size=40) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _colours(per_class=6, other=0, top="shots/") -> dict[str, bytes]:
    out = {}
    for name, rgb in COLOURS.items():
        for i in range(per_class):
            shade = tuple(max(0, min(255, v + 7 * i - 20)) for v in rgb)
            out[f"{top}{name}/{i}.png"] = _png(shade)
    for i in range(other):
        out[f"{top}other/{i}.png"] = _png((200, 200, 0 + 20 * i))
    return out


@pytest.fixture(scope="module")
def zs(tiny_loaded):
    return ZeroShot(tiny_loaded)


def test_a_labelled_zip_is_read_as_features_and_thumbnails(zs, tmp_path):
    data = read_labelled(zs, _zip(tmp_path / "set.zip", _colours(other=3)))
    assert data.classes == ("dark blue", "green", "red")  # folder names as labels, sorted
    assert len(data.names) == 21 and data.features.shape == (21, 32) and len(data.thumbs) == 21
    assert data.has_none and int((data.targets == -1).sum()) == 3
    assert all(t.size[0] <= 48 for t in data.thumbs)
    shade = tuple(max(0, min(255, v + 7 * 3 - 20)) for v in COLOURS["red"])  # what _colours wrote as red/3.png
    reference = zs.image_features([Image.open(io.BytesIO(_png(shade))).convert("RGB")])[0]
    assert torch.allclose(data.features[data.names.index("shots/red/3.png")], reference, atol=1e-6)
    assert label_text("golden_retriever") == "golden retriever"


def test_a_folder_and_a_csv_are_read_too(zs, tmp_path):
    folder = tmp_path / "folder"
    for name, data in _colours(per_class=2, top="").items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert read_labelled(zs, folder).classes == ("dark blue", "green", "red")
    members = {f"img{i}.png": _png((10 * i, 0, 0)) for i in range(4)}
    members["labels.csv"] = b"filename,label\nimg0.png,cat\nimg1.png,cat\nimg2.png,dog\nimg3.png,dog\n"
    data = read_labelled(zs, _zip(tmp_path / "csv.zip", members))
    assert data.classes == ("cat", "dog") and data.targets.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("members, error, message", [
    ({"a/1.png": _png("red"), "a/2.png": _png("red"), "other/1.png": _png("blue")}, Refusal,
     'at least 2 classes \\(an "other" or "_none" folder is not a class\\); this one has 1'),
    ({"a/1.png": _png("red"), "b/1.png": _png("blue")}, Refusal, "The class a has one image"),
    ({"golden_retriever/1.png": _png("red"), "golden_retriever/2.png": _png("red"),
      "Golden Retriever/1.png": _png("blue"), "Golden Retriever/2.png": _png("blue")}, Refusal,
     r"The class folders Golden Retriever and golden_retriever are the same label once read as text"),
    ({"x.png": _png("red"), "labels.csv": b"filename,label\nx.png,cat\ny.png,dog\n"}, Refusal,
     "The CSV names y.png, which is not an image in the set"),
    ({"a/1.png": _png("red"), "a/2.png": b"not a png at all", "b/1.png": _png("blue"), "b/2.png": _png("blue")},
     Refusal, "a/2.png"),
    ({"loose.png": _png("red"), "a/1.png": _png("red")}, Refusal, "loose.png is not inside a class folder"),
])
def test_a_bad_labelled_set_gets_a_sentence(zs, tmp_path, members, error, message):
    with pytest.raises(error, match=message):
        read_labelled(zs, _zip(tmp_path / "bad.zip", members))


def test_the_limits_are_said(zs, tmp_path, monkeypatch):
    from clipdemo.tasks import yourdata

    monkeypatch.setattr(yourdata, "MAX_IMAGES", 10)
    with pytest.raises(Refusal, match="This set has 18 images; the limit is 10"):
        read_labelled(zs, _zip(tmp_path / "many.zip", _colours(per_class=6)))
    monkeypatch.setattr(yourdata, "MAX_IMAGES", 2000)
    monkeypatch.setattr(yourdata, "MAX_CLASSES", 2)
    with pytest.raises(Refusal, match="This set has 3 classes; the limit is 2"):
        read_labelled(zs, _zip(tmp_path / "classes.zip", _colours(per_class=2)))


# -- the report -------------------------------------------------------------------------------------------------
def test_the_report_equals_a_reference_and_keeps_examples_apart(zs, tmp_path):
    data = read_labelled(zs, _zip(tmp_path / "set.zip", _colours(per_class=6, other=4)))
    report = evaluate_labelled(zs, data, CIFAR_TEMPLATES, examples=2)
    assert [a.setting for a in report.settings] == ["single template", "template set", "few-shot (2 per class)"]
    assert len(report.scored) == 3 * 4  # 2 of each class held out, the "other" images not scored for accuracy
    assert report.threshold_from == "none-folder" and len(report.none_cosines) == 4
    assert not set(report.held.tolist()) & set(report.scored.tolist())  # examples are never scored
    assert sorted(data.targets[report.held].tolist()) == [0, 0, 1, 1, 2, 2]
    json.dumps(report.as_dict(), allow_nan=False)  # valid JSON (an empty bin is null, not NaN)
    text = zs.text_features(LabelSet.of(data.classes, CIFAR_TEMPLATES))
    cos = data.features[report.scored] @ text.T  # the notebook's own lines, as a reference
    probs = (100.0 * cos).softmax(dim=-1)
    assert torch.equal(report.settings[1].predicted, probs.argmax(dim=-1))
    doc = report.as_dict()
    assert set(doc) == {"classes", "images_scored", "accuracy", "calibration", "threshold", "threshold_withheld",
                        "trained_weights", "few_shot_examples_per_class", "few_shot_weights"}
    assert doc["trained_weights"] is True and doc["threshold_withheld"] is None
    assert (doc["few_shot_weights"]["alpha"], doc["few_shot_weights"]["beta"]) in calibration.TIP_GRID
    assert doc["calibration"]["note"].startswith("scores are relative to the labels given")
    with pytest.raises(Refusal, match="The class dark blue has 6 images: holding out 6"):
        evaluate_labelled(zs, data, CIFAR_TEMPLATES, examples=6)


def test_on_untrained_weights_the_report_says_so_and_recommends_no_threshold(tmp_path):
    """#36: random weights are named first, no threshold is pushed, and top-5 is left out with 3 classes (it would
    be 100% whatever the model)."""
    from clipdemo.ui.tabs.yourdata import _summary
    from clipdemo.weights.load import load_model
    rnd = ZeroShot(load_model("random:tiny", device="cpu"))
    data = read_labelled(rnd, _zip(tmp_path / "set.zip", _colours(per_class=6, other=4)))
    report = evaluate_labelled(rnd, data, CIFAR_TEMPLATES)
    assert (report.trained, report.threshold, report.threshold_from) == (False, None, "untrained")
    doc = report.as_dict()
    assert (doc["trained_weights"], doc["threshold"], doc["threshold_withheld"]) == (False, None, "untrained")
    assert [a["top5"] for a in doc["accuracy"]] == [None, None]
    said = _summary(report, "en")
    assert said.startswith("⚠️ **Untrained random weights:** these figures are chance's") and "top-5" not in said
    assert "no threshold is recommended on untrained weights" in said
    assert "eğitilmemiş ağırlıklarla eşik önerilmiyor" in _summary(report, "tr")


def test_a_threshold_that_separates_nothing_is_not_recommended(zs, tmp_path, monkeypatch):
    """The best threshold is kept only when its balanced accuracy beats chance's (one that keeps every image, or
    refuses at random, is 50%)."""
    from clipdemo.ui.tabs.yourdata import _summary
    data = read_labelled(zs, _zip(tmp_path / "set.zip", _colours(per_class=6, other=4)))
    chance = calibration.Threshold(-0.029, 1.0, 0.0)  # keeps all, refuses none: balanced accuracy 0.5
    monkeypatch.setattr(calibration, "best_threshold", lambda fits, none: chance)
    report = evaluate_labelled(zs, data, CIFAR_TEMPLATES)
    assert (report.threshold, report.threshold_from) == (None, "separates-nothing")
    assert "no best cosine separates the right answers from the wrong ones better than chance" in _summary(report, "en")


# -- the CLI and the API ---------------------------------------------------------------------------------------
def test_cli_evaluate_labelled_and_predict_threshold(tmp_path, tiny_ckpts, monkeypatch, capsys):
    """In this process (the CLI's exit codes and one-line errors in a real process: test_cli.py)."""
    from clipdemo.cli import main
    for name, value in {"CLIPDEMO_CACHE": str(tmp_path), "CLIPDEMO_DOWNLOAD": "0", "CLIPDEMO_BACKEND": "eager"}.items():
        monkeypatch.setenv(name, value)
    zipped = _zip(tmp_path / "set.zip", _colours(per_class=5, other=3))
    assert main(["evaluate", "--labelled", str(zipped), "--few-shot", "2", "--weights", str(tiny_ckpts["state_dict"]),
                 "--results", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    for word in ("accuracy", "ECE", "threshold", "zero-shot", "few-shot"):
        assert word in out, word
    assert json.loads((tmp_path / "report.json").read_text())["few_shot_examples_per_class"] == 2
    assert (tmp_path / "report-images.csv").read_text().splitlines()[0].startswith("image,true,single template")
    assert "It holds for these labels with the cifar18 templates" in out
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 40), "red").save(image)
    base = ["predict", "--image", str(image), "--labels", "red,blue", "--weights", str(tiny_ckpts["state_dict"])]
    assert main([*base, "--threshold", "0.99"]) == 0
    assert "None of these labels fits: the best cosine" in capsys.readouterr().out
    assert main([*base, "--threshold", "-1", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["fits"] is True and all(r["fits"] for r in js["top"])
    with pytest.raises(SystemExit) as bad:
        main([*base, "--threshold", "2"])
    assert bad.value.code == 2 and "threshold must be a cosine between -1 and 1" in capsys.readouterr().err


def test_the_api_threshold_marks_what_fits(tiny_loaded):
    from clipdemo.core.words import Refusal
    from clipdemo.tasks.classify import classify

    zs = ZeroShot(tiny_loaded)
    image = Image.new("RGB", (40, 40), "red")
    plain = classify(zs, image, ["red", "blue"])
    assert all("fits" not in row for row in plain)  # without a threshold, exactly as before
    marked = classify(zs, image, ["red", "blue"], threshold=plain[1]["cosine"] + 1e-6)
    assert [row["fits"] for row in marked] == [plain[0]["cosine"] > plain[1]["cosine"] + 1e-6, False]
    with pytest.raises(Refusal, match="threshold must be a cosine between -1 and 1"):
        classify(zs, image, ["red", "blue"], threshold=float("nan"))


# -- the page ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(tiny_loaded, cifar_root, tmp_path_factory):
    from uiserver import built_page, runtime_for

    return built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("yourdata-page")))


def test_the_page_states_the_limits_the_code_enforces():
    from clipdemo.core.words import STRINGS
    from clipdemo.tasks import yourdata

    for lang, thousands in (("en", "2,000"), ("tr", "2.000")):
        intro = STRINGS[lang]["labelled_intro"]
        assert f"{thousands} " in intro and f"{yourdata.MAX_CLASSES} " in intro
        assert f"{yourdata.MAX_SET_BYTES // 2**20} MB" in intro and "20 MB" in intro
    assert yourdata.MAX_IMAGES == 2000


def test_the_evaluate_tab_reads_a_zip_and_shows_the_report_only_then(page, tmp_path):
    from uiserver import no_progress

    box = page.evaluate.yours
    assert not box.results.visible and not page.evaluate.results.visible  # no wall of empty boxes before a run
    with pytest.raises(Exception, match="Upload a labelled zip first"):
        box.run(None, "", 0, LabelSet.preset(), None, no_progress)
    loaded = box.load(str(_zip(tmp_path / "set.zip", _colours(per_class=5, other=3))), None, no_progress)
    data = loaded[box.data]
    assert loaded[box.classes].value == "dark blue\ngreen\nred" and "Read 18 images in 3 classes (3" in loaded[box.note]
    with pytest.raises(Exception, match="The set has 3 classes: give one label per class"):
        box.run(data, "blue\ngreen", 2, LabelSet.preset(), None, no_progress)
    out = box.run(data, "navy square\ngreen square\nred square", 2, LabelSet.preset(), None, no_progress)
    summary = out[box.summary]
    assert out[box.results].visible
    for words in ("top-1 accuracy", "Zero-shot vs few-shot", "ECE", "threshold"):
        assert words in summary, words
    assert [t.name for t in out[box.per_class].data] == [
        "single template", "template set", "few-shot (2 per class)"]
    named = re.search(r"\*\*(-?\d\.\d{3})\*\*", summary)[1]  # the threshold the text names
    assert out[box.recommended] == pytest.approx(float(named), abs=1e-3)
    assert box.use_threshold(out[box.recommended]) == round(out[box.recommended], 3)
    csv_path, json_path = out[box.files]
    assert Path(csv_path).read_text().startswith("image,true,single template,template set,few-shot")
    assert json.loads(Path(json_path).read_text())["classes"] == ["navy square", "green square", "red square"]


def test_predict_says_none_of_these_under_the_sessions_threshold(page):
    from uiserver import no_progress

    p = page.predict
    plain = p.predict_index(3, 3, LabelSet.of(["red", "blue"], ["{}"]), None, None, no_progress)
    assert plain[p.verdict] == ""
    high = p.predict_index(3, 3, LabelSet.of(["red", "blue"], ["{}"]), Answering(0.99), None, no_progress)
    assert high[p.verdict].startswith("🚫 **None of these labels fits**: the best cosine")
    low = p.predict_index(3, 3, LabelSet.of(["red", "blue"], ["{}"]), Answering(-1.0), None, no_progress)
    assert low[p.verdict].startswith("✓ A label fits")
    assert p.set_threshold(0.25, None).threshold == 0.25 and p.set_threshold(None, Answering(0.3)).threshold is None
    with pytest.raises(Exception, match="threshold must be a cosine between -1 and 1"):
        p.set_threshold(3, None)
    # the box is text (empty: off, #36): what a visitor types, and what is still being typed
    assert p.set_threshold(" 0.2 ", None).threshold == 0.2 and p.set_threshold("", Answering(0.3)).threshold is None
    assert p.set_threshold("-", Answering(0.3)).threshold == 0.3  # halfway through "-0.1": unchanged, no sentence
    with pytest.raises(Exception, match="threshold must be a cosine between -1 and 1"):
        p.set_threshold("2", None)
    with pytest.raises(Exception, match="threshold must be a cosine between -1 and 1.*abc"):
        p.set_threshold("abc", None)


def test_a_report_with_every_answer_right_says_why_it_has_no_threshold(zs, tmp_path, monkeypatch):

    data = read_labelled(zs, _zip(tmp_path / "set.zip", _colours(per_class=4)))
    perfect = dataclasses.replace(data, features=zs.text_features(LabelSet.of(data.classes, ["a photo of a {}"]))[
        data.targets])  # each image's feature is its own label's: every answer right
    report = evaluate_labelled(zs, perfect, ["a photo of a {}"])
    assert report.settings[0].top1 == 1.0 and report.threshold is None and report.as_dict()["threshold"] is None


# -- the proofs on a model that has learned something ---------------------------------------------------------------
def test_on_the_trained_squares_the_threshold_calibration_and_few_shot_do_their_jobs(squares):
    """The tiny CLIP trained to tell red squares from blue ones (conftest's `squares`): images of a colour it never
    saw (green) fall below the threshold learnt against them; ambiguous purple squares, labelled at random, make
    softmax(100 cos) over-confident and the fitted temperature lowers ECE on held-out images; and with a prompt for
    "blue" that means nothing of the kind, zero-shot misses every blue square while four examples per class, their
    weights chosen on the examples alone, mend it."""
    g = torch.Generator().manual_seed(3)

    def feats(colour, n, start=0):
        with torch.no_grad():
            x = torch.stack([squares.image((start + i) % 16, colour) for i in range(n)])
            return torch.nn.functional.normalize(squares.model.visual(x), dim=-1)

    red, blue = feats(squares.RED, 32), feats(squares.BLUE, 32)
    seen, truth = torch.cat([red, blue]), torch.arange(2).repeat_interleave(32)
    green = feats(torch.tensor([-0.5, 1.0, -0.5]) * 1.5, 32)
    t = best_threshold((seen @ squares.texts.T).max(-1).values, (green @ squares.texts.T).max(-1).values)
    assert t.balanced_accuracy == 1.0  # every seen square kept, every green one refused

    purple = feats((squares.RED + squares.BLUE) / 2, 48)
    images, labels = torch.cat([seen, purple]), torch.cat([truth, torch.randint(0, 2, (48,), generator=g)])
    order = torch.randperm(len(labels), generator=g)
    a, b = order[::2], order[1::2]
    cos = images @ squares.texts.T
    temperature = fit_temperature(cos[a], labels[a])
    right = probabilities(cos[b]).argmax(-1) == labels[b]
    before = ece(probabilities(cos[b]).max(-1).values, right)
    after = ece(probabilities(cos[b], temperature).max(-1).values, right)
    assert temperature > 1 and after < before

    misleading = torch.nn.functional.normalize(torch.stack([squares.texts[0], torch.randn(16, generator=g)]), dim=-1)
    zero = (seen @ misleading.T).argmax(-1)
    keys = torch.cat([feats(squares.RED, 4, 3), feats(squares.BLUE, 4, 7)])
    key_targets = torch.arange(2).repeat_interleave(4)
    alpha, beta = calibration.tune_tip(misleading, keys, key_targets)
    few = tip_adapter(seen, misleading, keys, key_targets, alpha, beta).argmax(-1)
    assert float((zero == truth).float().mean()) == 0.5 and float((few == truth).float().mean()) > 0.9
    assert (alpha, beta) != (0.0, 1.0)  # the examples asked for a strong cache: the prompt contradicts them
    default = tip_adapter(seen, misleading, keys, key_targets).argmax(-1)  # the paper's starting weights
    assert float((default == truth).float().mean()) == 0.5  # too weak here: why the weights are chosen, not fixed


def test_examples_on_predict_make_its_answers_few_shot_for_this_session(page, tmp_path):
    """Example images added for a label (or handed over by the report) change this session's predictions to
    Tip-Adapter's, equal to the reference; other sessions (no examples) stay zero-shot; forgetting them goes back."""
    from clipdemo.tasks.classify import predict_with
    from uiserver import no_progress

    p, zs = page.predict, page.rt.service()
    labels = LabelSet.of(["red square", "green square", "blue square"], ["a photo of a {}"])
    paths = []
    for i in range(3):
        Image.new("RGB", (40, 40), (220, 30 + 10 * i, 30)).save(tmp_path / f"r{i}.png")
        paths.append(str(tmp_path / f"r{i}.png"))
    with pytest.raises(Exception, match="Few-shot examples were given for lion"):
        p.add_examples("lion", paths, None, labels, None, no_progress)
    added = p.add_examples("red square", paths, None, labels, None, no_progress)
    answering = added[p.answering]
    assert answering.describe() == [("red square", 3)] and "red square (3)" in added[p.examples_note]
    few = p.predict_index(5, 3, labels, answering, None, no_progress)
    assert answering.few_shot(zs, labels).alpha > 0  # one label's examples: the starting weights, not zero-shot
    data = page.rt.dataset()
    feat = zs.cifar_feature(5, data.image(5), len(data))
    reference = predict_with(zs, feat, labels, 3, answering)
    assert list(few[p.result].values()) == pytest.approx([q for _, q in reference.top], abs=1e-6)
    zero = p.predict_index(5, 3, labels, None, None, no_progress)  # another session: no examples
    assert list(zero[p.result].values()) == pytest.approx([q for _, q in predict_with(zs, feat, labels, 3).top],
                                                          abs=1e-6)
    assert zero[p.result] != pytest.approx(few[p.result], abs=1e-4)  # the examples changed the answer
    again = answering.with_examples("red square", answering.examples["red square"])  # the same images again
    assert again.describe() == [("red square", 3)]  # an example given twice is one
    cleared = p.clear_examples(answering)
    assert cleared[p.answering].describe() == [] and cleared[p.examples_note].startswith("No examples")
    assert cleared[p.example_files] is None  # the file list goes with the examples (#36)
    box = page.evaluate.yours
    data_set = box.load(str(_zip(tmp_path / "set.zip", _colours(per_class=5))), None, no_progress)[box.data]
    report = box.run(data_set, "dark blue\ngreen\nred", 2, LabelSet.preset(), None, no_progress)
    handed = box.use_examples(report[box.held], None)
    assert sorted(handed[p.answering].describe()) == [("dark blue", 2), ("green", 2), ("red", 2)]


def test_the_fitted_temperature_can_show_predicts_scores(page, tmp_path):
    """The report's temperature, taken to Predict: the probabilities become softmax(100 cos / T) (a reference by
    hand), the ranking and the cosines stay, and the chart and the note say so."""
    from uiserver import no_progress

    p, zs, box = page.predict, page.rt.service(), page.evaluate.yours
    data = box.load(str(_zip(tmp_path / "set.zip", _colours(per_class=5))), None, no_progress)[box.data]
    report = box.run(data, "dark blue\ngreen\nred", 0, LabelSet.preset(), None, no_progress)
    taken = box.use_temperature(report[box.fitted], None)
    answering = taken[p.answering]
    assert answering.temperature == pytest.approx(report[box.fitted]) and "softmax(100·cos / " in taken[
        p.examples_note]
    labels = LabelSet.of(["red", "green", "blue"], ["a photo of a {}"])
    out = p.predict_index(7, 3, labels, answering, None, no_progress)
    dataset = page.rt.dataset()
    cos = zs.cifar_feature(7, dataset.image(7), len(dataset)) @ zs.text_features(labels).T  # [3]
    expected = probabilities(cos[None], answering.temperature)[0]
    assert sorted(out[p.result].values(), reverse=True) == pytest.approx(sorted(expected.tolist(), reverse=True),
                                                                          abs=1e-6)
    assert f"temperature {answering.temperature:.2f}" in out[p.chart].layout.title.text


def test_more_refusals_and_a_csv_beside_the_images_in_a_zipped_folder(zs, tmp_path):
    members = {"set/a.png": _png("red"), "set/b.png": _png("red"), "set/c.png": _png("blue"),
               "set/d.png": _png("blue"),
               "set/labels.csv": b"filename,label\na.png,red\nb.png,red\nc.png,blue\nd.png,blue\n"}
    assert read_labelled(zs, _zip(tmp_path / "folder.zip", members)).classes == ("blue", "red")
    twice = {**members, "set/labels.csv": b"a.png,red\na.png,red\nc.png,blue\nd.png,blue\n"}
    with pytest.raises(Refusal, match="The CSV names a.png twice"):
        read_labelled(zs, _zip(tmp_path / "twice.zip", twice))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_zip(tmp_path / "ok.zip", members).read_bytes()[:-30])  # its directory cut short
    with pytest.raises(Refusal):
        read_labelled(zs, broken)


def test_leave_one_out_needs_two_labels_of_two_and_ignores_copies():
    g = torch.Generator().manual_seed(4)
    text = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    one = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=-1)
    assert calibration.tune_tip(text, one, torch.tensor([0, 1])) == (calibration.TIP_ALPHA, calibration.TIP_BETA)
    copies = torch.cat([one, one])  # each example twice: a copy must not vote for its twin
    # with the copies left out, no example has a true neighbour: the cache cannot help, zero-shot (the first) stays;
    # had a copy voted, every example would be right through its twin and the strongest cache would win
    assert calibration.tune_tip(text, copies, torch.tensor([0, 1, 0, 1])) == calibration.TIP_GRID[0]
