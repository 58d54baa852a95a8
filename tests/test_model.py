"""Loading: TorchScript through the real clip.load, state dicts, random weights, and clear errors."""

import os
import pickle

import pytest
import torch

from clipdemo.core.model import PRESETS, ClipConfig, WeightsError, build_random, resolve_device

from clipdemo.weights.load import load_model
@pytest.mark.parametrize("kind", ["jit", "state_dict"])
def test_tiny_checkpoint_loads_both_formats(tiny_ckpts, kind):
    loaded = load_model(str(tiny_ckpts[kind]), device="cpu")
    assert loaded.config == PRESETS["tiny"]
    assert loaded.info.trained and len(loaded.info.sha256) == 64
    assert loaded.dtype == torch.float32 and loaded.device.type == "cpu"
    assert not loaded.model.training
    ref = build_random(PRESETS["tiny"], 1)
    # clip.load/build_model round weights through fp16 (as the official files are), then cast to fp32 on CPU
    assert torch.equal(loaded.model.visual.proj, ref.visual.proj.half().float())
    pixels = loaded.preprocess(__import__("PIL.Image").Image.new("RGB", (50, 40), (200, 10, 10)))
    assert pixels.shape == (3, 32, 32)


def test_jit_and_state_dict_give_the_same_model(tiny_ckpts):
    a = load_model(str(tiny_ckpts["jit"]), device="cpu").model.state_dict()
    b = load_model(str(tiny_ckpts["state_dict"]), device="cpu").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_random_vitb32_has_the_real_shapes(vitb32):
    m = vitb32.model
    assert vitb32.config == ClipConfig()
    assert m.visual.conv1.weight.shape == (768, 3, 32, 32) and m.visual.conv1.stride == (32, 32)
    assert sum(p.numel() for p in m.parameters()) == 151_277_313
    assert not vitb32.info.trained and "meaningless" in str(vitb32.info.label)
    assert vitb32.info.identity == "random:seeded random init of ViT-B/32 (seed=0)"


def test_random_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_random(PRESETS["tiny"], 5)
    assert torch.equal(torch.rand(1), expected_next)
    b = build_random(PRESETS["tiny"], 5)
    c = build_random(PRESETS["tiny"], 6)
    assert torch.equal(a.visual.proj, b.visual.proj) and not torch.equal(a.visual.proj, c.visual.proj)


def test_truncated_and_corrupt_files_are_clear_errors(tiny_ckpts, tmp_path):
    for kind in ("jit", "state_dict"):
        data = tiny_ckpts[kind].read_bytes()
        bad = tmp_path / f"truncated-{kind}.pt"
        bad.write_bytes(data[: len(data) // 2])
        with pytest.raises(WeightsError, match="is not a loadable checkpoint"):
            load_model(str(bad), device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(WeightsError, match="junk.pt is not a loadable checkpoint"):
        load_model(str(junk), device="cpu")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"visual.proj": evil}, path)  # torch.save pickles the object's __reduce__
    with pytest.raises(WeightsError, match="refused as unsafe"):
        load_model(str(path), device="cpu")
    legacy = tmp_path / "evil-legacy.pt"
    legacy.write_bytes(pickle.dumps(evil))
    with pytest.raises(WeightsError, match="not a loadable checkpoint"):
        load_model(str(legacy), device="cpu")
    assert not marker.exists()


def test_wrong_architecture_and_missing_file(tmp_path):
    sd = tmp_path / "rn.pt"
    torch.save({"visual.layer1.0.conv1.weight": torch.zeros(1)}, sd)
    with pytest.raises(WeightsError, match="Only CLIP ViT checkpoints are supported"):
        load_model(str(sd), device="cpu")
    with pytest.raises(WeightsError, match="Unknown weights 'nope.pt': not a file and not one of ViT-B/32, random"):
        load_model("nope.pt", device="cpu")


def test_device_choice():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="Unknown device 'tpu'; choose auto, cpu, cuda or zerogpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            resolve_device("cuda")


@pytest.mark.parametrize("kind", ["jit", "state_dict"])
def test_lean_loader_equals_clip_load(tiny_ckpts, kind):
    """Our loader builds exactly the model the real clip.load (or build_model) builds, on CPU."""
    from clipdemo.core.clip_package import import_clip
    from clipdemo.core.zeroshot import tokenize
    clip = import_clip()
    if kind == "jit":
        ref, _ = clip.load(str(tiny_ckpts["jit"]), device="cpu", jit=False)
    else:
        ref = clip.model.build_model(torch.load(tiny_ckpts["state_dict"], weights_only=True)).float()
    ours = load_model(str(tiny_ckpts[kind]), device="cpu").model
    a, b = ref.state_dict(), ours.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    text = tokenize(["a photo of a cat", "a dog"])
    image = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(ours.encode_text(text), ref.encode_text(text))
        assert torch.equal(ours.encode_image(image), ref.encode_image(image))
    assert not ours.training


def test_shape_mismatch_is_a_clear_error(tiny_ckpts, tmp_path):
    sd = torch.load(tiny_ckpts["state_dict"], weights_only=True)
    sd["ln_final.bias"] = torch.zeros(3)
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(WeightsError, match=r"Tensor ln_final.bias has shape \(3,\), expected \(64,\)"):
        load_model(str(bad), device="cpu")
    del sd["ln_final.bias"]
    torch.save(sd, bad)
    with pytest.raises(WeightsError, match=r"missing \['ln_final.bias'\]"):
        load_model(str(bad), device="cpu")


@pytest.mark.slow  # a fresh interpreter in a subprocess
@pytest.mark.parametrize("setuptools", ["pinned (has pkg_resources)", "82+ or none (no pkg_resources)"])
def test_clip_imports_with_or_without_pkg_resources(setuptools):
    """A Space build may bring a setuptools without pkg_resources: clip must still import and tokenise."""
    import subprocess
    import sys

    hide = "import sys; sys.modules['pkg_resources'] = None\n" if "none" in setuptools else ""
    code = hide + ("import importlib.util, sys\n"
                   "from clipdemo.core.clip_package import import_clip\n"
                   "clip = import_clip()\n"
                   "print(clip.tokenize(['a photo of a lion'])[0, :7].tolist())\n"
                   "print('pkg_resources' in sys.modules and sys.modules['pkg_resources'] is not None)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    tokens, has = res.stdout.splitlines()
    assert tokens == "[49406, 320, 1125, 539, 320, 5567, 49407]"
    assert has == ("False" if "none" in setuptools else "True")  # the stand-in is removed again
