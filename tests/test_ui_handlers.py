"""UI handlers called as plain functions: outputs, per-session label state, errors as gr.Error."""

import re

import gradio as gr
import pytest
from PIL import Image

from clipdemo.presets import CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR_TEMPLATES
from clipdemo.ui import LabelState
from clipdemo.ui.status import StatusLine
from clipdemo.ui.tabs.architecture import ArchitectureTab
from clipdemo.ui.tabs.evaluate import EvaluateTab
from clipdemo.ui.tabs.labels import LabelsTab
from clipdemo.ui.tabs.predict import PredictTab
from uiserver import runtime_for


def _no_progress(*args, **kwargs):
    return None


class Handlers:
    """Every tab's handlers over one runtime, as the app builds them."""

    def __init__(self, rt):
        self.rt = rt
        self.predict, self.labels = PredictTab(rt), LabelsTab(rt)
        self.evaluate, self.arch, self.status = EvaluateTab(rt), ArchitectureTab(rt), StatusLine(rt)


@pytest.fixture(scope="module")
def handlers(tiny_loaded, cifar_root, tmp_path_factory):
    return Handlers(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("c")))


def test_predict_index_returns_views_and_results(handlers, tiny_loaded):
    from clipdemo.data import open_cifar100
    from clipdemo.service import ZeroShot

    r = handlers.predict.predict_index(15, 5, LabelState(), _no_progress)
    original, model_input, label, fig, lines, truth, files, last = (r.original, r.model_input, r.label, r.chart,
                                                                    r.lines, r.truth, r.files, r.last_input)
    assert last == {"kind": "index", "index": 15}
    assert tiny_loaded.config.image_resolution == 32  # the tiny model's 32x32 input is shown enlarged
    assert original.size == (224, 224) and model_input.size == (224, 224)
    assert original.getpixel((0, 0)) == open_cifar100(handlers.rt.settings.data_root).image(15).getpixel((0, 0))
    ref = ZeroShot(tiny_loaded).predict(handlers.rt.dataset().image(15), CIFAR100_CLASSES, ("a photo of a {}",), 5)
    assert list(label) == [lab for lab, _ in ref.top]
    assert list(label.values()) == pytest.approx([p for _, p in ref.top], abs=1e-6)
    assert lines.splitlines()[0] == f"{ref.top[0][0]:>16s}: {100 * ref.top[0][1]:.2f}%"
    assert "True class: **lion**" in truth and "rank" in truth
    assert [f.rsplit(".", 1)[1] for f in files] == ["csv", "json"]
    assert fig.data[0].type == "bar" and len(fig.data[0].y) == 5


def test_labels_are_per_session_state(handlers):
    default = LabelState()
    applied = handlers.labels.set_labels("cat\ndog\nDog\n", "a drawing of a {}", default, _no_progress)
    mine, summary = applied.state, applied.summary
    assert mine.labels == ("cat", "dog") and mine.templates == ("a drawing of a {}",)
    assert mine.label_preset == "custom" and "dropped duplicates: Dog" in summary
    assert default.labels == CIFAR100_CLASSES  # the other session's state object is untouched
    label = handlers.predict.predict_index(3, 5, mine, _no_progress).label
    assert set(label) == {"cat", "dog"}
    label = handlers.predict.predict_index(3, 5, default, _no_progress).label
    assert set(label) <= set(CIFAR100_CLASSES) and len(label) == 5


def test_preset_round_trip(handlers):
    text = handlers.labels.label_text("cifar10")
    applied = handlers.labels.set_labels(text, handlers.labels.template_text("cifar18"), LabelState(), _no_progress)
    state, summary = applied.state, applied.summary
    assert state.labels == CIFAR10_CLASSES and state.label_preset == "cifar10" and state.template_set == "cifar18"
    assert "10 labels × 18 template(s) = 180 prompts" in summary and "ready ✓" in summary


@pytest.mark.parametrize("labels, templates, message", [
    ("", "a photo of a {}", "Give at least 2 different labels"),
    ("cat\ndog", "a photo of a", "must contain exactly one {}"),
    ("cat\n" + " ".join(["x"] * 80), "{}", "label 2 is 82 tokens long"),
])
def test_invalid_edit_raises_and_keeps_state(handlers, labels, templates, message):
    with pytest.raises(gr.Error, match=message):
        handlers.labels.set_labels(labels, templates, LabelState(), _no_progress)
    assert message.split()[0] in handlers.labels.check_labels(labels, templates)


def test_check_labels_escapes_html(handlers):
    msg = handlers.labels.check_labels("<img src=x onerror=alert(1)>\n<b>x</b>", "{}")
    assert msg.startswith("✓ 2 labels")
    msg = handlers.labels.check_labels("cat\ndog", "<img src=x onerror=alert(1)>")  # an error echoes the template
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in msg and "<img" not in msg.replace("\\<img", "")
    summary = handlers.labels.label_summary(LabelState(("<script>alert(1)</script>", "b")), ready=False)
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in summary  # shown as text, never as a tag


def test_predict_image_and_errors(handlers, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # files here count as uploads
    path = tmp_path / "x.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(path)
    r = handlers.predict.predict_image(str(path), 3, LabelState(), _no_progress)
    model_input, label, last = r.model_input, r.label, r.last_input
    assert model_input.size == (224, 224) and len(label) == 3 and last == {"kind": "upload", "path": str(path)}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(gr.Error, match="not an image"):
        handlers.predict.predict_image(str(bad), 3, LabelState(), _no_progress)
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.predict.predict_image(None, 3, LabelState(), _no_progress)
    for elsewhere in ("/etc/passwd", "/etc/no-such-file", str(tmp_path / ".." / "x.png"), "relative.png"):
        with pytest.raises(gr.Error, match=r"^'?Only images uploaded to this page can be classified\.'?$"):
            handlers.predict.predict_image(elsewhere, 3, LabelState(), _no_progress)
    with pytest.raises(gr.Error, match="out of range"):
        handlers.predict.predict_index(10_000, 3, LabelState(), _no_progress)
    with pytest.raises(gr.Error, match="Top-k must be between 1 and 20"):
        handlers.predict.predict_index(1, 50, LabelState(), _no_progress)


def test_architecture_and_status(handlers):
    v = handlers.arch.architecture(2)
    card, vis, vis_text, txt, txt_text, tree, treemap = (v.card, v.vision_table, v.vision_text, v.text_table,
                                                         v.text_text, v.tree, v.treemap)
    assert treemap.data[0].type == "treemap" and treemap.data[0].values[0] == card["parameters"]["total"]
    assert card["vision"]["patch_size"] == 16 and card["parameters"]["total"] == sum(
        p.numel() for p in handlers.rt.service().loaded.model.parameters())
    assert vis["headers"][0] == "layer" and "Conv2d" in vis_text and "Embedding" in txt_text
    assert tree.startswith("CLIP(")
    line = handlers.status.status().line
    assert "tiny-state.pt" in line.replace("\\", "") and "10,000 test images" in line


def test_attention_view_for_the_last_image(handlers, tiny_loaded):
    from clipdemo.inside import cls_attention_map, vision_attention

    with pytest.raises(gr.Error, match="Classify an image first"):
        handlers.predict.attention("rollout", "mean", None, _no_progress)
    last = {"kind": "index", "index": 15}
    v = handlers.predict.attention("2", "1", last, _no_progress)
    fig, overlay, caption = v.patches, v.overlay, v.caption
    assert overlay.size[1] == 224 and overlay.size[0] > 224 and "layer 2, head 1" in caption  # and its colour bar
    assert fig.layout.title.text.startswith("2×2 patches of 16×16 px = 4 tokens")
    trace = vision_attention(tiny_loaded.model, handlers.rt.service().pixels(handlers.rt.dataset().image(15))[None])
    assert overlay.tobytes() != handlers.predict.attention("rollout", "mean", last, _no_progress).overlay.tobytes()
    assert cls_attention_map(trace, 1, 0).shape == (2, 2)
    with pytest.raises(gr.Error, match="Layer must be 1..2, not 3"):
        handlers.predict.attention("3", "mean", last, _no_progress)


def test_tokens_and_similarity(handlers):
    v = handlers.labels.tokens("a photo of a lion")
    table, note = v.table, v.note
    assert [r[2] for r in table["data"][:7]] == ["<|startoftext|>", "a", "photo", "of", "a", "lion", "<|endoftext|>"]
    assert "feature is read here" in table["data"][6][3] and table["data"][7][2] == "padding × 70"
    assert "7 of 77 positions" in note and "position 6" in note
    with pytest.raises(gr.Error, match="at most 77"):
        handlers.labels.tokens(" ".join(["x"] * 80))
    fig = handlers.labels.similarity(LabelState(("cat", "dog", "car")), _no_progress)
    assert list(fig.data[0].x) == ["cat", "dog", "car"] and fig.data[0].z[0][0] == pytest.approx(1.0, abs=1e-5)


def test_evaluation_handler(handlers):
    from clipdemo.ui.common import KEEP

    ev = handlers.evaluate
    outs = list(ev.run("per-class", 0, 2, 0, "both", "cifar100", _no_progress))
    assert re.match(r"⏳ encoded (\d+) of \1 new images", outs[-2].summary)  # images earlier tests stored are reused
    from clipdemo.ui.tabs.evaluate import CHUNK

    counts = [int(re.match(r"⏳ encoded (\d+) of", o.summary).group(1)) for o in outs[:-1]]
    assert all(b - a == CHUNK for a, b in zip(counts, counts[1:-1])) and CHUNK <= 16  # a yield (a chance to stop) per chunk
    assert outs[0].chart is KEEP and outs[0].files is KEEP  # while encoding, only the summary changes
    last = outs[-1]
    summary, chart, confusion, pairs, worst, files = (last.summary, last.chart, last.confusion, last.pairs,
                                                      last.worst, last.files)
    for setting, templates in (("single", ("a photo of a {}",)), ("cifar18", CIFAR_TEMPLATES)):
        assert f"| {setting} | 200 | {_hand_top1(handlers.rt, 2, 0, templates):.2f}% |" in summary
    assert "subset" in summary or "whole test split" in summary
    assert chart.data[0].type == "bar" and confusion.data[0].z.shape == (100, 100)
    assert int(confusion.data[0].z.sum()) == 200
    assert all(caption.count("→") == 1 for _, caption in pairs + worst) and len(worst) <= 12
    assert [f.rsplit(".", 1)[1] for f in files] == ["csv", "json"]
    again = list(ev.run("per-class", 0, 2, 0, "single", "cifar100-paper", _no_progress))
    assert len(again) == 1 and "already stored" in again[0].summary  # no image encoding the second time
    with pytest.raises(gr.Error, match="between 1 and"):
        list(ev.run("first", 0, 1, 0, "single", "cifar100", _no_progress))


def test_evaluation_says_chance_level_for_random_weights(cifar_root, tmp_path):
    from clipdemo.model import load_model
    rt = runtime_for(load_model("random:tiny"), cifar_root, tmp=tmp_path)
    out = list(EvaluateTab(rt).run("first", 50, 1, 0, "single", "cifar100", _no_progress))[-1].summary
    assert "Untrained random weights: accuracy is chance level" in out and "1% top-1" in out
    assert f"| single | 50 | {_hand_top1(rt, None, 50, ('a photo of a {}',)):.2f}% |" in out  # the computed figure


def _hand_top1(rt, per_class, n_or_seed, templates) -> float:
    """Top-1 in percent counted by hand: argmax of stored image features against the class text features."""
    from clipdemo.evaluate import select_indices

    data, zs = rt.dataset(), rt.service()
    targets = list(data.dataset.targets)
    indices = (select_indices(targets, "per-class", per_class, n_or_seed) if per_class
               else select_indices(targets, "first", n_or_seed))
    scores = zs.cifar.gather(indices) @ zs.text_features(CIFAR100_CLASSES, tuple(templates)).T  # [N, 100]
    hits = sum(int(scores[i].argmax()) == targets[j] for i, j in enumerate(indices))
    return 100 * hits / len(indices)


def test_named_results_become_outputs_in_one_place(handlers):
    """`event` maps a handler's named results onto components; KEEP leaves a component as it is."""
    from clipdemo.ui.common import event

    names = ("summary", "chart", "confusion", "pairs", "worst", "files")
    with gr.Blocks():
        comps = {name: gr.Markdown() for name in names}
        kwargs = event(handlers.evaluate.run, [], comps)
        with pytest.raises(ValueError, match="run has no result named nope"):
            event(handlers.evaluate.run, [], {"nope": gr.Markdown()})
    assert kwargs["outputs"] == [comps[n] for n in names]
    outs = list(kwargs["fn"]("per-class", 0, 3, 1, "single", "cifar100", _no_progress))
    assert len(outs) >= 2  # new images to encode: progress first, then the results
    assert all(list(o) == [comps["summary"]] for o in outs[:-1])  # one value per changed output, nothing else
    assert list(outs[-1]) == [comps[n] for n in names] and "| single | 300 |" in outs[-1][comps["summary"]]
