"""`python -m clipdemo predict`: output formats, and bad input -> one-line error, non-zero exit."""

import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from clipdemo.cli import main
from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet
from clipdemo.tasks.classify import predict_image


@pytest.fixture
def env(monkeypatch, tiny_ckpts, cifar_root, tmp_path):
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", str(tiny_ckpts["state_dict"]))
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    return tmp_path


def test_predict_index_json(env, capsys, tiny_loaded, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving.service import ZeroShot

    assert main(["predict", "--index", "15", "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["true_label"] == "lion" and out["image"] == "CIFAR-100 test image #15"
    assert out["weights"]["name"] == "tiny-state.pt" and out["weights"]["trained"] is True
    assert len(out["top"]) == 3
    ref = predict_image(ZeroShot(tiny_loaded), open_cifar100(cifar_root).image(15), LabelSet.preset(), 3)
    assert [(t["label"], t["score"]) for t in out["top"]] == [(lab, pytest.approx(p, abs=1e-6)) for lab, p in ref.top]
    assert 1 <= out["true_rank"] <= 100


def test_predict_image_text_format(env, capsys):
    path = env / "red.png"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(path)
    assert main(["predict", "--image", str(path), "--labels", "red square,blue circle,green car", "--top-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Weights: unverified checkpoint tiny-state.pt, SHA-256 ")
    i = out.index("Top predictions:")
    rows = out[i + 2:i + 4]
    assert len(rows) == 2 and all(len(r.split(": ")[0]) == 16 and r.endswith("%") for r in rows)
    assert sum(float(r.rsplit(" ", 1)[1][:-1]) for r in rows) <= 100.0


def test_random_weights_say_so(env, capsys, monkeypatch):
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", "random:tiny")
    assert main(["predict", "--index", "0", "--preset", "cifar10"]) == 0
    assert "untrained random weights - these results are meaningless" in capsys.readouterr().out


def test_labels_file_and_template(env, capsys):
    f = env / "labels.txt"
    f.write_text("cat\ndog\n\nbird\n")
    assert main(["predict", "--index", "1", "--labels-file", str(f), "--template", "a drawing of a {}", "--json",
                 "--top-k", "10"]) == 0
    assert sorted(t["label"] for t in json.loads(capsys.readouterr().out)["top"]) == ["bird", "cat", "dog"]


def _run(args, env_vars):
    import os

    return subprocess.run([sys.executable, "-m", "clipdemo", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env_vars})


@pytest.mark.parametrize("args, message", [
    (["--image", "/nonexistent/cat.png"], "error: No image file at cat.png"),
    (["--image", "{notimage}"], "error: This file is not an image in an accepted format"),
    (["--index", "10000"], "argument --index: Image index 10000 is out of range; the CIFAR-100 test split has indices "
                           "0..9999."),
    (["--index", "-1"], "argument --index: Image index -1 is out of range"),
    (["--index", "3", "--labels", ""], "error: Give at least 2 different labels (got 0)"),
    (["--index", "3", "--labels", "cat," + " ".join(["x"] * 80)], "error: The prompt for label 2 is 86 tokens long"),
    (["--index", "3", "--template", "a photo"], "error: Template 1 ('a photo') must contain exactly one {}"),
    (["--index", "3", "--labels", "cat,dog,cat"], "error: Label 3 ('cat') repeats label 1"),
    (["--index", "3", "--top-k", "0"], "argument --top-k: Top-k must be between 1 and 20, not 0."),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch, capsys):
    """In process (`main` is what `python -m clipdemo` runs; a subprocess run is below): the exit status and the
    one line on stderr, for the checkers' refusals and argparse's own."""
    notimage = tmp_path / "notes.png"
    notimage.write_text("hello, I am text")
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", "random:tiny")
    monkeypatch.setenv("CLIPDEMO_DATA", str(tmp_path / "none"))
    try:
        code = main(["predict", *[a.replace("{notimage}", str(notimage)) for a in args]])
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    err = capsys.readouterr()
    assert code == 2 and message in err.err and err.out == ""


@pytest.mark.slow
def test_missing_dataset_and_weights_are_one_line_errors_in_a_real_process(tmp_path):
    res = _run(["predict", "--index", "3"], {"CLIPDEMO_DATA": str(tmp_path / "none"), "CLIPDEMO_DOWNLOAD": "0"})
    assert res.returncode == 2 and "error: CIFAR-100 is not available under" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    res = _run(["predict", "--image", str(img)], {"CLIPDEMO_CACHE": str(tmp_path / "c"), "CLIPDEMO_DOWNLOAD": "0"})
    assert res.returncode == 2 and "error: Could not get the ViT-B/32 weights" in res.stderr
    assert "Traceback" not in res.stderr


def test_architecture_command(env, capsys):
    assert main(["architecture", "--weights", "random", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "Parameters: 151,277,313 = 151.28M (vision 87.85M, text 63.43M, logit scale 1)" in out
    assert "Conv2d(3, 768, kernel=32, stride=32, bias=False), 224px -> 7x7 patches + class token = 50 tokens" in out
    assert "width 512, 12 layers, 8 heads, context 77, vocabulary 49408" in out
    assert "[1, 768, 7, 7]" in out and "[1, 77, 512]" in out and "untrained random weights" in out
    assert main(["architecture", "--weights", "random", "--depth", "1", "--flops"]) == 0  # the loaded model's FLOPs
    out = capsys.readouterr().out  # on the CPU, counted in torchinfo's pass: the meta device's count, and the hand's
    assert "FlopCounterMode: 8,817,623,040 FLOPs = 2 x 4,408,811,520 multiply-adds, of which 1,461,657,600 inside" in out
    with pytest.raises(SystemExit) as exc:
        main(["architecture", "--depth", "9"])
    assert exc.value.code == 2 and "argument --depth: Depth must be between 1 and 4, not 9." in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_says_when_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bench/gpu_check.py is run by hand there")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    res = subprocess.run([sys.executable, "-m", "bench.gpu_check"], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "no CUDA device here" in res.stderr and "Traceback" not in res.stderr


def test_explain_prints_the_grid_and_writes_the_overlay(env, capsys, tiny_loaded, cifar_root):
    import torch

    from clipdemo.core.inside import image_relevancy
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving.service import ZeroShot

    out_png = env / "map.png"
    assert main(["explain", "--index", "15", "--label", "lion", "--overlay", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "Label: 'lion'" in out and "Image: CIFAR-100 test image #15 (true class: lion)" in out
    grid = [[float(v) for v in line.split()] for line in out.split("top left first):\n")[1].split("\n\n")[0].splitlines()]
    zs = ZeroShot(tiny_loaded)
    image = open_cifar100(cifar_root).image(15)
    text = zs.text_features(LabelSet.preset())[CIFAR100_CLASSES.index("lion")]
    ref, _, _ = image_relevancy(tiny_loaded.model, zs.pixels(image)[None], text)
    assert torch.allclose(torch.tensor(grid), ref, atol=1e-3)  # the printed 2x2 grid is the map
    assert re.search(r"^  a [\d.]+  photo [\d.]+  of [\d.]+  a [\d.]+  lion [\d.]+$", out, re.M)  # words, relevancy
    assert Image.open(out_png).size[1] == 224
    assert main(["explain", "--index", "15", "--label", "unicorn"]) == 2
    assert "'unicorn' is not one of the active labels" in capsys.readouterr().err


def test_search_prints_a_table_writes_a_sheet_and_saves_the_index(env, capsys, tiny_loaded, cifar_root):
    from clipdemo.core.search import SearchQuery
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving.service import ZeroShot
    from clipdemo.tasks.search import search_cifar

    sheet = env / "sheet.png"
    assert main(["search", "a red car", "--negative", "rain", "--top-k", "12", "--sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    from clipdemo.serving.features import ImageFeatureStore
    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    (saved,) = (env / "cache").glob("cifar100-test-features-*-float32.pt")  # the index is kept for next time
    zs.add_stored_features(ImageFeatureStore.load(saved, zs.features_identity))  # (the index's features: test_search)
    ref = search_cifar(zs, data, SearchQuery.of("a red car", "rain"), 12)
    rows = re.findall(r"^ +(\d+) +(\d+) +(\S+) +(-?\d\.\d{4})$", out, re.M)
    assert [(int(r), int(i), c) for r, i, c, _ in rows] == [(n, h.index, h.label) for n, h in enumerate(ref.hits, 1)]
    assert "Query: a photo of a red car; not: a photo of rain" in out and "10,000 CIFAR-100 test images searched" in out
    assert Image.open(sheet).size == (6 * 134 + 6, 2 * (128 + 14 + 12) + 6)  # 12 results: 2 rows of 6
    assert main(["search", "--index", "4321", "--top-k", "3", "--json"]) == 0  # more like a test image
    found = json.loads(capsys.readouterr().out)["results"]
    assert found[0]["index"] == 4321 and set(found[0]) == {"index", "true_label", "cosine"}


@pytest.mark.parametrize("args, message", [
    ([], "error: Type what to look for, or give an image to look like."),
    (["--negative", "rain"], "error: A negative query only takes away"),
    (["a lion", "--top-k", "101"], "argument --top-k: The number of results must be between 1 and 100, not 101."),
    (["a lion", "--index", "3", "--image", "x.png"], "not allowed with argument"),
])
def test_bad_searches_exit_2_with_one_line(args, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", "random:tiny")
    monkeypatch.setenv("CLIPDEMO_DATA", str(tmp_path / "none"))
    try:
        code = main(["search", *args])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr()
    assert code == 2 and message in err.err and err.out == ""


def _documented_keys() -> dict[str, set[str]]:
    """docs/cli.md's table of each sub-command's `--json` keys: the backticked names outside parentheses."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    table = doc.split("## `--json` on the other sub-commands", 1)[1]
    keys = {}
    for command, cell in re.findall(r"^\| `([a-z-]+)` \| (.+) \|$", table, re.M):
        keys[command] = set(re.findall(r"`(\w+)`", re.sub(r"\([^()]*\)", "", cell)))
    return keys


@pytest.mark.parametrize("argv", [
    ["explain", "--index", "15", "--label", "lion"],
    ["architecture", "--depth", "1"],
    ["family"],
    ["features", "--limit", "5"],
    ["evaluate", "--limit", "20", "--compare", "single"],
    ["export-onnx", "--onnx", "{tmp}/visual.onnx"],
])
def test_every_result_command_prints_versioned_json_with_the_documented_keys(argv, env, capsys):
    from clipdemo.cli import JSON_SCHEMA
    argv = [a.replace("{tmp}", str(env)) for a in argv]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
    assert (out.pop("schema"), out.pop("command")) == (JSON_SCHEMA, argv[0])
    assert set(out) - {"weights"} <= _documented_keys()[argv[0]], "docs/cli.md lacks a key"
    if "weights" in out and argv[0] != "family":
        assert out["weights"]["name"] == "tiny-state.pt" and out["weights"]["trained"] is True


@pytest.mark.parametrize("argv, now", [
    (["explain", "--index", "1", "--out", "x.png"], "--out is now --overlay"),
    (["bulk", "--images", "photos", "--collection", "c"], "--images is now --folder"),
    (["evaluate", "--template-set", "cifar18"], "--template-set is now --templates"),
    (["evaluate", "--examples", "4"], "--examples is now --few-shot"),
    (["export-onnx", "--out", "v.onnx"], "--out is now --onnx"),
])
def test_a_renamed_flag_is_refused_with_its_new_name(argv, now, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"error: {now}" in err and "(see CHANGELOG.md)" in err


def test_evaluate_refuses_labelled_flags_without_a_labelled_set(env, capsys):
    assert main(["evaluate", "--templates", "single", "--limit", "5"]) == 2
    assert "--templates and --few-shot are for --labelled; --compare picks" in capsys.readouterr().err
