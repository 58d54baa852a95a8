"""Batches of images: reading files and zips with their limits (every refusal a sentence, nothing written
anywhere), classifying them as the single path does, the `classify_batch` API and `predict --images`."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest
from PIL import Image

from clipdemo.core.words import Refusal
from clipdemo.tasks.classify import MAX_BATCH, classify_batch, predict_image, read_batch
from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet
from clipdemo.serving.scheduler import Priority
from clipdemo.serving.service import ZeroShot
def _png(path, colour="teal", size=(40, 30)):
    Image.new("RGB", size, colour).save(path)
    return path


def _zip(path, members: dict[str, bytes], method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _png_bytes(colour="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, "PNG")
    return buf.getvalue()


def test_files_and_a_zip_are_read_in_order(tmp_path):
    files = [_png(tmp_path / f"{c}.png", c) for c in ("red", "green", "blue")]
    z = _zip(tmp_path / "more.zip", {"a/one.png": _png_bytes(), "two.png": _png_bytes("white"),
                                     "__MACOSX/a/._one.png": b"resource fork"})  # tool junk is skipped
    items = read_batch([*files, z], fit=224)
    assert [name for name, _ in items] == ["red.png", "green.png", "blue.png", "a/one.png", "two.png"]
    assert all(im.mode == "RGB" for _, im in items)


@pytest.mark.parametrize("members, message", [
    ({"ok.png": _png_bytes(), "notes.txt": b"hello"}, "notes.txt in the zip is not an image this app reads"),
    ({"ok.png": _png_bytes(), "../evil.png": _png_bytes()}, r"unsafe name \('../evil.png'\); nothing was read"),
    ({"/abs.png": _png_bytes()}, "unsafe name"),
    ({"bomb.png": b"\0" * (10 * 2**20)}, "unpacks to over 100 times its packed size"),
    ({f"i{i}.png": _png_bytes() for i in range(MAX_BATCH + 1)}, "Too many images: 65; a batch holds at most 64"),
])
def test_bad_zips_are_refused_with_a_sentence_and_nothing_is_written(tmp_path, members, message):
    folder = tmp_path / "work"
    folder.mkdir()
    z = _zip(folder / "upload.zip", members)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(Refusal, match=message):
        read_batch([z], fit=224)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no member extracted anywhere


def test_too_many_files_and_a_non_image_file(tmp_path):
    many = [_png(tmp_path / f"{i}.png") for i in range(MAX_BATCH + 1)]
    with pytest.raises(Refusal, match="Too many images: 65"):
        read_batch(many, fit=224)
    (tmp_path / "x.txt").write_text("not an image")
    with pytest.raises(Refusal, match="x.txt is not an image this app reads"):
        read_batch([tmp_path / "x.txt"], fit=224)
    with pytest.raises(Refusal, match="Give at least one image"):
        read_batch([], fit=224)


def test_a_batch_gives_each_image_its_single_prediction(tiny_loaded, tmp_path):
    zs = ZeroShot(tiny_loaded)
    items = [(f"{i}", Image.effect_mandelbrot((50 + 7 * i, 40), (-2, -1.2, 1, 1.2), 20 + i).convert("RGB"))
             for i in range(11)]  # more than one bulk chunk (8 on CPU)
    label_set = LabelSet.of(CIFAR100_CLASSES[:20], ("a photo of a {}",))
    done = classify_batch(zs, [image for _, image in items], label_set, k=3)
    assert len(done) == len(items)
    for (_, image), d in zip(items, done):
        single = predict_image(zs, image, label_set, k=3)  # one image alone: a batch of one, another model call
        assert [lab for lab, _ in d.top] == [lab for lab, _ in single.top]
        assert max(abs(p - q) for (_, p), (_, q) in zip(d.top, single.top)) < 1e-6
    assert zs.gate_stats.grants[Priority.BULK] >= 2  # 11 images: two bulk chunks


@pytest.mark.slow
def test_classify_batch_api(tiny_loaded, cifar_root, tmp_path):
    from gradio_client import Client

    from uiserver import running_app, runtime_for

    urls = ["data:image/png;base64," + base64.b64encode(_png_bytes(c)).decode() for c in ("red", "green", "blue")]
    with running_app(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)) as (url, _):
        c = Client(url, verbose=False)
        out = c.predict(urls, ["cat", "dog", "car"], "a photo of a {}", 2, api_name="/classify_batch")
        single = c.predict(urls[1], ["cat", "dog", "car"], "a photo of a {}", 2, api_name="/classify")
        with pytest.raises(Exception, match="Give 1 to 64 images, not 65"):
            c.predict(urls[:1] * 65, ["cat", "dog"], api_name="/classify_batch")
    assert [o["image"] for o in out] == [0, 1, 2] and all(len(o["predictions"]) == 2 for o in out)
    assert [p["label"] for p in out[1]["predictions"]] == [p["label"] for p in single]
    assert all(abs(p["score"] - q["score"]) < 1e-6 for p, q in zip(out[1]["predictions"], single))


@pytest.mark.slow
def test_cli_predict_images(tiny_ckpts, tmp_path, capsys, monkeypatch):
    from clipdemo.cli import main
    for c in ("red", "green"):
        _png(tmp_path / f"{c}.png", c)
    _zip(tmp_path / "z.zip", {"blue.png": _png_bytes("blue")})
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", str(tiny_ckpts["state_dict"]))
    assert main(["predict", "--images", str(tmp_path), "--labels", "cat,dog,car", "--top-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [i["image"] for i in out["images"]] == ["green.png", "red.png", "blue.png"]
    assert all(len(i["predictions"]) == 2 and set(i["predictions"][0]) == {"label", "score", "cosine"} for i in out["images"])
    assert main(["predict", "--images", str(tmp_path / "*.png"), "--labels", "cat,dog"]) == 0
    text = capsys.readouterr().out
    assert "green.png" in text and "red.png" in text and "blue.png" not in text
    assert main(["predict", "--images", str(tmp_path / "none-*.png"), "--labels", "cat,dog"]) == 2
    assert "No images found" in capsys.readouterr().err
