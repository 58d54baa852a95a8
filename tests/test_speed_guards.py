"""Correctness guards of the speed-ups (no timings here; see bench/): backends, feature store, caches."""

import pytest
import torch

from clipdemo.serving import backends
from clipdemo.serving.backends import PARITY_TOL, choose, eager_encoder, onnx_encoder, parity
from clipdemo.tasks.evaluate import Evaluation, evaluate
from clipdemo.serving.features import FeatureFileError, ImageFeatureStore, default_path
from clipdemo.core.model import PRESETS, build_random
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import predict_image, predict_with
def _probe(res, seed=0):
    return torch.randn(3, 3, res, res, generator=torch.Generator().manual_seed(seed))


def test_onnx_backend_matches_eager_on_tiny(tiny_loaded, tmp_path):
    model = tiny_loaded.model
    enc = onnx_encoder(model, 32, tmp_path / "v.onnx")
    assert (tmp_path / "v.onnx").is_file() and not list(tmp_path.glob("*.part"))
    x = _probe(32, 1)
    assert parity(enc, eager_encoder(model), x) <= PARITY_TOL
    assert torch.allclose(enc.encode(x), model.encode_image(x).detach(), atol=1e-4)


@pytest.mark.slow
def test_onnx_backend_matches_eager_on_full_size(vitb32, vitb32_cache):
    path = backends.onnx_cache_path(vitb32_cache, vitb32.info.identity)  # exported once a session (conftest.py)
    encoder, note = choose("auto", vitb32.model, 224, path, _probe(224))
    assert encoder.name == "onnxruntime" and note.startswith("ONNX Runtime fp32 (parity with eager")
    assert parity(encoder, eager_encoder(vitb32.model), _probe(224, 5)) <= PARITY_TOL


def test_auto_falls_back_to_eager_when_parity_fails(tiny_loaded, tmp_path):
    other = build_random(PRESETS["tiny"], 99)  # an ONNX file exported from different weights
    onnx_encoder(other, 32, tmp_path / "stale.onnx")
    encoder, note = choose("auto", tiny_loaded.model, 32, tmp_path / "stale.onnx", _probe(32))
    assert encoder.name == "eager" and "parity" in note and "> 1e-06" in note
    encoder, note = choose("eager", tiny_loaded.model, 32, tmp_path / "x.onnx", _probe(32))
    assert encoder.name == "eager" and not (tmp_path / "x.onnx").exists()
    with pytest.raises(ValueError, match="Unknown image backend 'tpu'; choose auto, eager, onnxruntime, bf16"):
        choose("tpu", tiny_loaded.model, 32, None, _probe(32))


def test_bf16_is_opt_in_and_labelled_approximate(tiny_loaded):
    encoder, note = choose("bf16", tiny_loaded.model, 32, None, _probe(32))
    assert encoder.name == "bf16" and not encoder.exact and "approximate" in note
    assert set(backends.BACKENDS) == {"eager", "onnxruntime", "bf16"} and "approximate" in backends.BACKENDS["bf16"]


def test_selected_backend_is_used_and_cached_per_weights(tiny_loaded, tmp_path):
    encoder, note = backends.select("auto", tiny_loaded.model, 32, tmp_path, tiny_loaded.info.identity)
    assert encoder.name == "onnxruntime"
    assert backends.onnx_cache_path(tmp_path, tiny_loaded.info.identity).is_file()
    assert backends.onnx_cache_path(tmp_path, "other") != backends.onnx_cache_path(tmp_path, tiny_loaded.info.identity)


class _Counting:
    """Wraps an encoder and counts forward passes and images."""

    def __init__(self, inner):
        self.inner, self.calls, self.images = inner, 0, 0

    def __call__(self, pixels):
        self.calls += 1
        self.images += pixels.shape[0]
        return self.inner.encode(pixels)


def test_feature_store_fill_save_load(tiny_loaded, cifar_root, tmp_path):
    from clipdemo.io.cifar import open_cifar100
    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    counter = _Counting(zs.encoder)
    zs.use_encoder(backends.ImageEncoder("counting", counter, True), "counting")
    first = Evaluation("first", 50, templates="single")
    assert evaluate(zs, data, first, batch_size=16).encoded == 50
    assert counter.calls == 4 and counter.images == 50
    more = Evaluation("first", 60, templates="single")
    assert evaluate(zs, data, more, batch_size=16, workers=1).encoded == 10  # only the missing ones
    assert counter.images == 60
    direct = zs.image_features([data.image(7)])[0]
    assert torch.allclose(zs.cifar.get(7), direct, atol=1e-6)
    before = counter.calls
    assert torch.equal(zs.cifar_feature(7, data.image(7), len(data)), zs.cifar.get(7))
    assert counter.calls == before  # served from the store: no forward pass
    zs.cifar_feature(500, data.image(500), len(data))
    assert counter.calls == before + 1 and zs.cifar.get(500) is not None  # filled lazily

    path = zs.features_path(tmp_path)
    assert path == default_path(tmp_path, tiny_loaded.info.sha256, "float32")  # the precision is in the name
    zs.cifar.save(path)
    back = ImageFeatureStore.load(path, tiny_loaded.info.identity + " float32")
    assert len(back) == 61 and torch.equal(back.gather([0, 59, 500]), zs.cifar.gather([0, 59, 500]))
    with pytest.raises(FeatureFileError, match="made with other weights"):
        ImageFeatureStore.load(path, "sha256:" + "0" * 64 + " float32")
    with pytest.raises(FeatureFileError, match="made with other weights"):  # the same weights on CUDA in fp16
        ImageFeatureStore.load(path, tiny_loaded.info.identity + " float16")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    with pytest.raises(FeatureFileError, match="not a readable features file"):
        ImageFeatureStore.load(junk, "x")
    with pytest.raises(KeyError):
        back.gather([1000])


def test_prediction_from_store_equals_fresh_encoding(tiny_loaded, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet

    data = open_cifar100(cifar_root)
    zs = ZeroShot(tiny_loaded)
    label_set = LabelSet.of(CIFAR100_CLASSES, ("a photo of a {}",))
    fresh = predict_image(zs, data.image(15), label_set, 5)
    zs.cifar_feature(15, data.image(15), len(data))
    stored = predict_with(zs, zs.cifar.get(15), label_set, 5)
    assert [lab for lab, _ in stored.top] == [lab for lab, _ in fresh.top]
    assert [p for _, p in stored.top] == pytest.approx([p for _, p in fresh.top], abs=1e-6)


def test_features_cli_then_runtime_loads_them(tiny_ckpts, cifar_root, tmp_path, monkeypatch, capsys):
    from clipdemo.cli import main
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    assert main(["features", "--weights", str(tiny_ckpts["state_dict"]), "--limit", "40", "--workers", "0"]) == 0
    assert "Saved 40 image features" in capsys.readouterr().out
    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, search_index=False))
    rt.start()
    zs = rt.service(timeout=60)
    rt.settle(60)  # the backend choice and feature loading follow "ready"
    assert zs.cifar is not None and len(zs.cifar) == 40
    assert zs.encoder.name == "onnxruntime" and "parity" in zs.encoder_note
    # seeded random weights have an identity (#35): their features go to a file of their own, next to these
    assert main(["features", "--weights", "random:tiny", "--limit", "5"]) == 0
    said = capsys.readouterr().out
    assert "Saved 5 image features" in said and str(tmp_path) in said and zs.features_path(tmp_path).name not in said
