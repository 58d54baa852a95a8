"""UI handlers called as plain functions on the built page (as Gradio's own tests call them): their
`{component: value}` results, per-session label state, errors as gr.Error, and the visitor's language."""

import re
from collections import Counter

import gradio as gr
import pytest
import torch
from PIL import Image

from clipdemo.core import zeroshot
from clipdemo.core.labels import CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR_TEMPLATES, LabelSet
from uiserver import Turkish, built_page, no_progress, runtime_for


DEFAULT = LabelSet.preset()




@pytest.fixture(scope="module")
def page(tiny_loaded, cifar_root, tmp_path_factory):
    return built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("c")))


def test_predict_index_returns_views_and_results(page, tiny_loaded):
    from clipdemo.fakes import notebook_top5

    p = page.predict
    r = p.predict_index(15, 5, DEFAULT, None, None, no_progress)
    assert set(r) == set(p.index_outputs)  # every output of the event, by component
    assert r[p.last_input] == {"kind": "index", "index": 15} and r[p.share] == "?index=15&k=5&tab=predict"
    assert tiny_loaded.config.image_resolution == 32  # the tiny model's 32x32 input is shown enlarged
    image = page.rt.dataset().image(15)
    assert r[p.original].size == (224, 224) and r[p.model_input].size == (224, 224)
    assert r[p.original].getpixel((0, 0)) == image.getpixel((0, 0))
    top, _ = notebook_top5(tiny_loaded.model, tiny_loaded.preprocess, image, CIFAR100_CLASSES)  # the notebook's code
    assert list(r[p.result]) == [lab for lab, _ in top]
    assert list(r[p.result].values()) == pytest.approx([q for _, q in top], abs=1e-5)
    assert r[p.lines].splitlines()[0] == f"{top[0][0]:>16s}: {100 * top[0][1]:.2f}%"
    assert "True class: **lion**" in r[p.truth] and "rank" in r[p.truth]
    assert [f.rsplit(".", 1)[1] for f in r[p.files]] == ["csv", "json"]
    assert r[p.chart].data[0].type == "bar" and len(r[p.chart].data[0].y) == 5


def test_labels_are_per_session_state(page, monkeypatch):
    import gradio as gr
    lab, p = page.labels, page.predict
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: pytest.fail(f"a toast repeats the summary: {a}"))  # #36
    applied = lab.set_labels("cat\ndog\nDog\n", "a drawing of a {}", "clip", DEFAULT, None, no_progress)
    mine, summary = applied[lab.state], applied[lab.summary]
    assert mine == LabelSet.of(["cat", "dog"], ["a drawing of a {}"]) and mine.label_preset is None
    assert "dropped duplicates: Dog" in summary  # said once, on the page, in the visitor's words
    assert DEFAULT.labels == CIFAR100_CLASSES  # the other session's set is untouched (and frozen)
    assert set(p.predict_index(3, 5, mine, None, None, no_progress)[p.result]) == {"cat", "dog"}
    other = p.predict_index(3, 5, DEFAULT, None, None, no_progress)[p.result]
    assert set(other) <= set(CIFAR100_CLASSES) and len(other) == 5


def test_a_preset_fills_its_editor_and_applies(page):
    lab = page.labels
    out = lab.pick_preset("cifar10", "cifar18", "ignored", "ignored", "clip", DEFAULT, None, no_progress)
    assert out[lab.label_box] == "\n".join(CIFAR10_CLASSES) and out[lab.tpl_box] == "\n".join(CIFAR_TEMPLATES)
    state = out[lab.state]
    assert (state.label_preset, state.template_set) == ("cifar10", "cifar18")
    assert "10 labels × 18 template(s) = 180 prompts" in out[lab.summary] and "ready ✓" in out[lab.summary]
    custom = lab.pick_preset("custom", "single", "cat\ndog", "a {}", "clip", DEFAULT, None, no_progress)
    assert lab.label_box not in custom and custom[lab.state] == LabelSet.of(["cat", "dog"], ["a photo of a {}"])


@pytest.mark.parametrize("labels, templates, message", [
    ("", "a photo of a {}", "Give at least 2 different labels"),
    ("cat\ndog", "a photo of a", "must contain exactly one {}"),
    ("cat\n" + " ".join(["x"] * 80), "{}", "label 2 is 82 tokens long"),
])
def test_invalid_edit_raises_and_keeps_state(page, labels, templates, message):
    with pytest.raises(gr.Error, match=message):
        page.labels.set_labels(labels, templates, "clip", DEFAULT, None, no_progress)
    assert message.split()[0] in page.labels.check_labels(labels, templates)[page.labels.check]


def test_refusals_are_said_in_the_visitors_language(page):
    """The core refuses with a key; the handler says it in the language of the request (Turkish here)."""
    with pytest.raises(gr.Error) as err:
        page.labels.set_labels("cat", "a photo of a {}", "clip", DEFAULT, Turkish(), no_progress)
    assert err.value.message == "En az 2 farklı etiket verin (1 etiket verildi)."
    check = page.labels.check_labels("cat\ndog", "a {}", request=Turkish())[page.labels.check]
    assert check.startswith("✓ ") and "2 etiket" in check
    with pytest.raises(gr.Error) as err:
        page.predict.predict_index(1, 50, DEFAULT, None, Turkish(), no_progress)
    assert err.value.message == "Top-k değeri 1 ile 20 arasında olmalıdır, 50 değil."


def test_check_labels_escapes_html(page):
    msg = page.labels.check_labels("<img src=x onerror=alert(1)>\n<b>x</b>", "{}")[page.labels.check]
    assert msg.startswith("✓ 2 labels")
    msg = page.labels.check_labels("cat\ndog", "<img src=x onerror=alert(1)>")[page.labels.check]  # echoes the template
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in msg and "<img" not in msg.replace("\\<img", "")
    summary = page.labels.label_summary(LabelSet.of(["<script>alert(1)</script>", "b"], ["{}"]), "en", ready=False)
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in summary  # shown as text, never as a tag


def test_predict_image_and_errors(page, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # files here count as uploads
    p = page.predict
    path = tmp_path / "x.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(path)
    r = p.predict_image(str(path), 3, DEFAULT, None, None, no_progress)
    assert r[p.upload_input].size == (224, 224) and len(r[p.result]) == 3
    assert r[p.last_input] == {"kind": "upload", "path": str(path)} and r[p.share] == "?k=3&tab=predict"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="not an image"):
        p.predict_image(str(bad), 3, DEFAULT, None, None, no_progress)
    with pytest.raises(gr.Error, match="Upload an image first"):
        p.predict_image(None, 3, DEFAULT, None, None, no_progress)
    for elsewhere in ("/etc/passwd", "/etc/no-such-file", str(tmp_path / ".." / "x.png"), "relative.png"):
        with pytest.raises(gr.Error, match=r"^'?Only images uploaded to this Space \(or sent as data: URLs\) can be "
                                           r"classified\.'?$"):
            p.predict_image(elsewhere, 3, DEFAULT, None, None, no_progress)
    with pytest.raises(gr.Error, match="out of range"):
        p.predict_index(10_000, 3, DEFAULT, None, None, no_progress)
    with pytest.raises(gr.Error, match="Top-k must be between 1 and 20"):
        p.predict_index(1, 50, DEFAULT, None, None, no_progress)


def test_architecture_and_status(page):
    a = page.architecture
    v = a.architecture(2)
    card = v[a.card]
    assert v[a.treemap].data[0].type == "treemap" and v[a.treemap].data[0].values[0] == card["parameters"]["total"]
    assert card["vision"]["patch_size"] == 16 and card["parameters"]["total"] == sum(
        q.numel() for q in page.rt.service().loaded.model.parameters())
    assert v[a.vision_table]["headers"][0] == "layer" and "Conv2d" in v[a.vision_text] and "Embedding" in v[a.text_text]
    assert v[a.tree].startswith("CLIP(")
    vision = page.rt.service().inside.tower_summary("visual", 2)  # the note shows the summary's own counts, exactly
    assert (f"| vision | {vision.total_mult_adds:,} | {vision.total_flops:,} | {vision.total_flops // 2:,} | "
            f"{vision.attention_flops // 2:,} | {vision.rest_mult_adds:+,} |") in v[a.flops_note]
    assert v[a.vision_table]["headers"][-1] == "FLOPs" and v[a.vision_table]["data"][0][-1] == vision.total_flops
    with pytest.raises(gr.Error, match="Depth must be between 1 and 4, not 5"):
        a.architecture(5)
    with pytest.raises(gr.Error, match="Unknown CLIP model 'ViT-B/8'"):
        a.compare("ViT-B/32", "ViT-B/8")
    line = page.status.status()[page.status.line]
    assert "tiny-state.pt" in line.replace("\\", "") and "10,000 test images" in line
    turkish = page.status.status(Turkish())[page.status.line].replace("\\", "")
    assert "⚠️ **doğrulanmamış kontrol noktası tiny-state.pt, SHA-256 " in turkish  # the warning in her language


def test_attention_view_for_the_last_image(page):
    p = page.predict
    with pytest.raises(gr.Error, match="Classify an image first"):
        p.attention("rollout", "mean", None, None, no_progress)
    last = {"kind": "index", "index": 15}
    v = p.attention("2", "1", last, None, no_progress)
    overlay, caption = v[p.overlay], v[p.caption]
    assert overlay.size[1] == 224 and overlay.size[0] > 224 and "layer 2, head 1" in caption  # and its colour bar
    assert v[p.patches].layout.title.text.startswith("2×2 patches of 16×16 px = 4 tokens")
    assert overlay.tobytes() != p.attention("rollout", "mean", last, None, no_progress)[p.overlay].tobytes()
    with pytest.raises(gr.Error, match="Layer must be 1..2, not 3"):
        p.attention("3", "mean", last, None, no_progress)


def test_tokens_and_similarity(page):
    lab = page.labels
    v = lab.tokens("a photo of a lion")
    table, note = v[lab.token_table], v[lab.token_note]
    assert [r[2] for r in table["data"][:7]] == ["<|startoftext|>", "a", "photo", "of", "a", "lion", "<|endoftext|>"]
    assert "feature is read here" in table["data"][6][3] and table["data"][7][2] == "padding × 70"
    assert "7 of 77 positions" in note and "position 6" in note
    with pytest.raises(gr.Error, match="at most 77"):
        lab.tokens(" ".join(["x"] * 80))
    fig = lab.similarity(LabelSet.of(["cat", "dog", "car"], ["a photo of a {}"]), None, no_progress)
    assert list(fig.data[0].x) == ["cat", "dog", "car"] and fig.data[0].z[0][0] == pytest.approx(1.0, abs=1e-5)


def _hand_top1(loaded, data, indices, templates) -> float:
    """Top-1 in percent, counted by hand with the model's own `encode_image` and `encode_text` (not the service,
    its store or its text cache): the argmax of the cosines against each class's (ensembled) prompts."""
    with torch.inference_mode():
        images = torch.stack([loaded.preprocess(data.image(i)) for i in indices])  # [N, 3, R, R]
        img = torch.nn.functional.normalize(loaded.model.encode_image(images).float(), dim=-1)  # [N, D]
        prompts = [t.replace("{}", c) for c in CIFAR100_CLASSES for t in templates]
        txt = torch.nn.functional.normalize(loaded.model.encode_text(zeroshot.tokenize(prompts)).float(), dim=-1)
        txt = torch.nn.functional.normalize(txt.reshape(100, len(templates), -1).mean(dim=1), dim=-1)  # [100, D]
    predicted = (img @ txt.T).argmax(dim=-1)
    return 100 * sum(int(p) == data.target(i) for p, i in zip(predicted, indices)) / len(indices)


def test_evaluation_handler(page, tiny_loaded):
    from clipdemo.tasks.evaluate import Evaluation

    ev = page.evaluate
    outs = list(ev.run("per-class", 0, 2, 0, "both", "cifar100", None, no_progress))
    steps = [int(re.match(r"⏳ encoding images: (\d+)/", o[ev.summary]).group(1)) for o in outs[:-1]]
    assert steps and all(set(o) == {ev.summary} for o in outs[:-1])  # while encoding, only the summary changes
    assert all(b - a == 16 for a, b in zip(steps, steps[1:-1]))  # a yield (a chance to stop) per two bulk calls
    last = outs[-1]
    data = page.rt.dataset()
    indices = Evaluation("per-class", 2).indices(data.targets)  # the sample, checked by its contract:
    assert len(set(indices)) == 200 and Counter(data.targets[i] for i in indices) == {c: 2 for c in range(100)}
    for setting, templates in (("single", ("a photo of a {}",)), ("cifar18", CIFAR_TEMPLATES)):
        assert f"| {setting} | 200 | {_hand_top1(tiny_loaded, data, indices, templates):.2f}% |" in last[ev.summary]
    assert "subset" in last[ev.summary] or "whole test split" in last[ev.summary]
    assert last[ev.chart].data[0].type == "bar" and last[ev.confusion].data[0].z.shape == (100, 100)
    assert int(last[ev.confusion].data[0].z.sum()) == 200
    assert all(caption.count("→") == 1 for _, caption in last[ev.pairs] + last[ev.worst]) and len(last[ev.worst]) <= 12
    assert [f.rsplit(".", 1)[1] for f in last[ev.files]] == ["csv", "json"]
    again = list(ev.run("per-class", 0, 2, 0, "single", "cifar100-paper", None, no_progress))
    assert len(again) == 1 and "already stored" in again[0][ev.summary]  # no image encoding the second time
    with pytest.raises(gr.Error, match="N must be between 1 and"):
        list(ev.run("first", 0, 1, 0, "single", "cifar100", None, no_progress))


def test_evaluation_says_chance_level_for_random_weights(cifar_root, tmp_path):
    from clipdemo.weights.load import load_model

    loaded = load_model("random:tiny")
    page = built_page(runtime_for(loaded, cifar_root, tmp=tmp_path))
    out = list(page.evaluate.run("first", 50, 1, 0, "single", "cifar100", None, no_progress))[-1]
    summary = out[page.evaluate.summary]
    assert "Untrained random weights: accuracy is chance level" in summary and "1% top-1" in summary
    data = page.rt.dataset()
    assert f"| single | 50 | {_hand_top1(loaded, data, list(range(50)), ('a photo of a {}',)):.2f}% |" in summary


def test_a_batch_table_speaks_the_visitors_language(page, tmp_path):
    for name, colour in (("red.png", "red"), ("blue.png", "blue")):
        Image.new("RGB", (40, 30), colour).save(tmp_path / name)
    b = page.predict.batch
    paths = [str(tmp_path / "red.png"), str(tmp_path / "blue.png")]
    tr, en = (b.classify_all(paths, 2, DEFAULT, None, req, no_progress)[b.table] for req in (Turkish(), None))
    assert tr["headers"] == ["görüntü", "ilk tahmin", "olasılık", "ilk k"]
    assert en["headers"] == ["image", "top-1", "probability", "top-k"] and tr["data"] == en["data"]
    assert [row[0] for row in en["data"]] == ["red.png", "blue.png"]
