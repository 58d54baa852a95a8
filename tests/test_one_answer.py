"""One answer for every shell (issue #35, part): the CLI's `predict`, the API's `classify` and the page's upload
handler give identical rows for the same image, labels, few-shot examples, threshold and temperature."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from clipdemo.cli import JSON_SCHEMA, main
from clipdemo.core.labels import LabelSet

LABELS = ["red thing", "blue thing", "green thing"]


def _data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-answer")
    examples = {"red thing": [(220, 30 + 9 * i, 20) for i in range(3)], "blue thing": [(20, 40, 200 - 9 * i) for i in range(2)]}
    for label, colours in examples.items():
        (root / "examples" / label.replace(" ", "_")).mkdir(parents=True)
        for i, colour in enumerate(colours):
            Image.new("RGB", (40, 40), colour).save(root / "examples" / label.replace(" ", "_") / f"{i}.png")
    image = Image.effect_mandelbrot((64, 48), (-2, -1.2, 1, 1.2), 30).convert("RGB")
    image.save(root / "query.png")
    images = {label: [Image.open(p).convert("RGB") for p in sorted((root / "examples" / label.replace(" ", "_")).iterdir())]
              for label in examples}
    return root, image, images


def test_the_cli_the_api_the_page_and_bulk_give_the_same_rows(inputs, tiny_ckpts, tiny_loaded, cifar_root, tmp_path,
                                                         capsys, monkeypatch):
    from uiserver import built_page, runtime_for
    from clipdemo.tasks.classify import Answering
    from clipdemo.ui.api import ApiEndpoints
    root, image, images = inputs
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    threshold, temperature = 0.05, 0.5

    assert main(["predict", "--image", str(root / "query.png"), "--labels", ",".join(LABELS), "--examples",
                 str(root / "examples"), "--threshold", str(threshold), "--temperature", str(temperature),
                 "--top-k", "3", "--json", "--weights", str(tiny_ckpts["state_dict"])]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert (cli["schema"], cli["text_encoder"], cli["examples"], cli["temperature"]) == \
        (JSON_SCHEMA, "clip", {"red thing": 3, "blue thing": 2}, temperature)

    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    api = ApiEndpoints(rt).classify(_data_url(image), LABELS, top_k=3, threshold=threshold, temperature=temperature,
                                    examples={label: [_data_url(i) for i in imgs] for label, imgs in images.items()})
    assert api == cli["top"]

    page = built_page(rt)
    zs = rt.service()
    answering = Answering().with_threshold(threshold).with_temperature(temperature)
    for label, imgs in images.items():
        answering = answering.with_examples(label, zs.image_features(imgs))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # files here count as uploads
    (tmp_path / "upload.png").write_bytes((root / "query.png").read_bytes())
    out = page.predict.predict_image(str(tmp_path / "upload.png"), 3, LabelSet.of(LABELS, ["a photo of a {}"]),
                                     answering, None, lambda *a, **k: None)
    assert list(out[page.predict.result].items()) == [(r["label"], r["score"]) for r in cli["top"]]
    verdict = "fits" if cli["fits"] else "none"
    assert (verdict == "none") == ("None of these" in out[page.predict.verdict])

    # bulk, the same image as a one-image collection: its predictions file holds the same rows
    import pyarrow.parquet as pq
    (tmp_path / "collection").mkdir()
    (tmp_path / "collection" / "query.png").write_bytes((root / "query.png").read_bytes())
    assert main(["bulk", "--folder", str(tmp_path / "collection"), "--collection", str(tmp_path / "bulk"), "--labels",
                 ",".join(LABELS), "--examples", str(root / "examples"), "--threshold", str(threshold),
                 "--temperature", str(temperature), "--top-k", "3", "--weights", str(tiny_ckpts["state_dict"])]) == 0
    (row,) = pq.read_table(tmp_path / "bulk" / "predictions").to_pylist()
    assert row["labels"] == [r["label"] for r in cli["top"]] and row["fits"] == cli["fits"]
    assert row["scores"] == pytest.approx([r["score"] for r in cli["top"]], abs=1e-6)
    assert row["cosines"] == pytest.approx([r["cosine"] for r in cli["top"]], abs=1e-6)
    settings = json.loads((tmp_path / "bulk" / "bulk.json").read_text())["settings"]
    assert (settings["temperature"], sorted(settings["examples"])) == (temperature, ["blue thing", "red thing"])


def test_a_cli_example_folder_for_a_label_the_set_lacks_is_a_sentence(inputs, tiny_ckpts, capsys, monkeypatch):
    root, _, _ = inputs
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    assert main(["predict", "--image", str(root / "query.png"), "--labels", "red thing,car", "--examples",
                 str(root / "examples"), "--weights", str(tiny_ckpts["state_dict"])]) == 2
    assert "Few-shot examples were given for blue thing, which is not one of the labels." in capsys.readouterr().err


@pytest.mark.parametrize("argv, said", [
    (["predict", "--index", "1", "--top-k", "0"], "between 1 and 20"),
    (["predict", "--index", "1", "--temperature", "0"], "The temperature must be a number between 0.01 and 100"),
])
def test_a_value_that_cannot_mean_anything_is_refused_in_a_sentence(argv, said, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("flag, said", [("--limit", "N must be between 1 and 10000, not 0"),
                                        ("--per-class", "K must be between 1 and 100, not 0")])
def test_evaluate_refuses_zero_images_where_it_took_the_default(flag, said, cifar_root, tiny_ckpts, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    assert main(["evaluate", "--weights", str(tiny_ckpts["state_dict"]), flag, "0"]) == 2
    assert said in capsys.readouterr().err


def test_architecture_needs_no_weights_for_a_known_architecture(capsys, monkeypatch, tmp_path):
    """Offline, with nothing cached: the default ViT-B/32 is built on the meta device, never downloaded."""
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    monkeypatch.delenv("CLIPDEMO_WEIGHTS", raising=False)
    assert main(["architecture", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "device meta" in out and "Parameters: 151,277,313" in out


def test_seeded_random_weights_have_an_identity_so_their_features_are_saved_and_read_again(tiny_loaded, tmp_path):
    """`search --weights random` encodes the 10,000 test images once: the next run reads them (issue #35)."""
    from clipdemo.serving.service import ZeroShot
    from clipdemo.weights.load import load_model
    random_a, random_b = load_model("random:tiny", device="cpu"), load_model("random:tiny", device="cpu", seed=1)
    path = ZeroShot(random_a).features_path(tmp_path)
    assert path == ZeroShot(load_model("random:tiny", device="cpu")).features_path(tmp_path)  # the same init
    assert path != ZeroShot(random_b).features_path(tmp_path)  # another seed is other weights
    assert path != ZeroShot(tiny_loaded).features_path(tmp_path)


def test_every_sub_command_named_in_the_docs_exists_and_each_is_named():
    """README.md at most 200 lines; every `python -m clipdemo X` in README or docs/ is a sub-command, and
    docs/cli.md names every sub-command there is (the module docstring's list drifted before)."""
    import re
    from pathlib import Path

    from clipdemo.cli import build_parser
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    parser = build_parser()
    commands = set(next(a for a in parser._actions if a.dest == "command").choices)
    texts = [readme, *(p.read_text(encoding="utf-8") for p in (root / "docs").glob("*.md"))]
    named = {m for t in texts for m in re.findall(r"(?:python -m clipdemo|`clipdemo) ([a-z][a-z-]+)", t)}
    assert named - {"predict"} and named <= commands, named - commands
    cli_doc = (root / "docs" / "cli.md").read_text(encoding="utf-8")
    assert all(f"`{c}`" in cli_doc for c in commands), [c for c in commands if f"`{c}`" not in cli_doc]
