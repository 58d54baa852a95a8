"""The Hugging Face Hub mirrors: a file preloaded into the HF cache (as `preload_from_hub` does on the Space)
is used with no network; a tampered one is refused and removed; a Hub download through a loopback server
standing in for the Hub; every host down fails fast; and open_clip's two file formats load to the same
features as open_clip itself."""

from __future__ import annotations

import hashlib
import socket
import warnings

import pytest
import torch

from clipdemo.core.model import PRESETS, build_random

from clipdemo.weights.load import load_model
from clipdemo.weights.sources import WEIGHT_SOURCES, Mirror, WeightSource
from clipdemo.core.model import WeightsError
from clipdemo.serving.settings import from_env
from clipdemo.weights.download import Hub, fetch
from fixtures import loopback_server

HUB = WEIGHT_SOURCES["ViT-B/32"].mirrors[0]  # the pinned safetensors file the Space preloads


def _tiny_safetensors(path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in build_random(PRESETS["tiny"], 3).state_dict().items()}, str(path))
    return path.read_bytes()


def _preload(hf_home, mirror: Mirror, blob: bytes):
    """Lay a file out as huggingface_hub's cache holds it: blobs/<etag>, snapshots/<revision>/<file> -> blob."""
    repo = hf_home / "hub" / ("models--" + mirror.repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(mirror.revision)
    blob_path = repo / "blobs" / hashlib.sha256(blob).hexdigest()
    blob_path.write_bytes(blob)
    link = repo / "snapshots" / mirror.revision / mirror.filename
    link.parent.mkdir(parents=True)
    link.symlink_to(blob_path)
    return link, blob_path


@pytest.fixture
def no_network(monkeypatch):
    """Any TCP connection attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_preloaded_file_is_used_with_no_network_call(tmp_path, monkeypatch, no_network):
    blob = _tiny_safetensors(tmp_path / "w.safetensors")
    pinned = Mirror(HUB.filename, hashlib.sha256(blob).hexdigest(), repo_id=HUB.repo_id,
                    revision=HUB.revision)  # the registry's repo, file and revision; the tiny file's hash
    monkeypatch.setitem(WEIGHT_SOURCES, "ViT-B/32", WeightSource("ViT-B/32", (pinned, *WEIGHT_SOURCES["ViT-B/32"].mirrors[1:])))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the settings read it, as huggingface_hub reads it
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    link, _ = _preload(tmp_path / "hf", pinned, blob)
    loaded = load_model("ViT-B/32", device="cpu", cache_dir=tmp_path / "cache", hub=from_env().hub)
    assert loaded.info.sha256 == pinned.sha256 and loaded.info.origin == pinned.where
    torch.save(build_random(PRESETS["tiny"], 3).state_dict(), tmp_path / "same.pt")
    reference = load_model(str(tmp_path / "same.pt"), device="cpu").model.state_dict()  # the same tensors, pickled
    got = loaded.model.state_dict()
    assert loaded.config == PRESETS["tiny"] and got.keys() == reference.keys()
    assert all(torch.equal(got[k], reference[k]) for k in got)
    assert not (tmp_path / "cache").exists()  # nothing fetched into clipdemo's own cache


def test_a_tampered_preloaded_file_is_refused_and_removed(tmp_path, monkeypatch, no_network):
    blob = _tiny_safetensors(tmp_path / "w.safetensors")
    pinned = Mirror(HUB.filename, hashlib.sha256(blob).hexdigest(), repo_id=HUB.repo_id,
                    revision=HUB.revision)
    link, blob_path = _preload(tmp_path / "hf", pinned, blob[:-1] + b"\0")  # one byte changed
    with pytest.raises(WeightsError, match="downloads are disabled"):
        fetch(WeightSource("hub", (pinned,)), tmp_path / "cache", hub=Hub(tmp_path / "hf" / "hub"),
              allow_download=False)
    assert not link.exists() and not blob_path.exists()


def test_hf_hub_offline_asks_no_host(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub = from_env().hub
    assert hub == Hub(tmp_path / "hf", "https://huggingface.co", offline=True)
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set: the Hub is not asked"):
        fetch(WeightSource("hub", (HUB,)), tmp_path / "cache", hub=hub)


def _hub_mirror(base: str, blob: bytes, name="w.safetensors") -> Mirror:
    return Mirror(name, hashlib.sha256(blob).hexdigest(), repo_id="org/tiny-clip",
                  revision="0123456789abcdef0123456789abcdef01234567", endpoint=base)


def test_hub_download_through_a_loopback_hub_then_cached(tmp_path):
    blob = _tiny_safetensors(tmp_path / "w.safetensors")
    route = "/org/tiny-clip/resolve/0123456789abcdef0123456789abcdef01234567/w.safetensors"
    hf = tmp_path / "hf"
    with loopback_server({route: blob}) as (base, hits):
        mirror = _hub_mirror(base, blob)
        path, used = fetch(WeightSource("hub", (mirror,)), tmp_path / "cache", hub=Hub(hf))
        assert used == mirror and path.read_bytes() == blob and hf in path.parents
        assert route in hits  # fetched with GET (after hf_hub_download's HEAD)
        n = len(hits)
        again, _ = fetch(WeightSource("hub", (mirror,)), tmp_path / "cache", hub=Hub(hf))
        assert again == path and len(hits) == n  # the second time from the HF cache, no request


def test_hub_download_with_the_wrong_bytes_is_refused_and_removed(tmp_path):
    blob = _tiny_safetensors(tmp_path / "w.safetensors")
    route = "/org/tiny-clip/resolve/0123456789abcdef0123456789abcdef01234567/w.safetensors"
    with loopback_server({route: blob + b"extra"}) as (base, _):
        mirror = _hub_mirror(base, blob)
        with pytest.raises(WeightsError, match=r"SHA-256 mismatch"):
            fetch(WeightSource("hub", (mirror,)), tmp_path / "cache", hub=Hub(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--org--tiny-clip"
    assert [p.name for p in (repo / "blobs").iterdir()] == [] and not (repo / "snapshots" / mirror.revision / "w.safetensors").is_symlink()


def test_every_host_down_fails_at_the_probe_naming_each_attempt(tmp_path, monkeypatch):
    """A closed port for every mirror: each host is probed once (a TCP connect, refused at once) and no download
    is started, which is what keeps a machine without network from waiting ~25 s a mirror in hf_hub_download."""
    import urllib.request

    import huggingface_hub

    closed = socket.socket()  # bound and never listening: connections are refused, and no other process can take it
    closed.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{closed.getsockname()[1]}"
    downloads, real = [], huggingface_hub.hf_hub_download

    def counted(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            downloads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", counted)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: downloads.append(a))
    hub = [_hub_mirror(base, b"a", name=f"w{i}.safetensors") for i in range(2)]
    urls = [Mirror("w.pt", "0" * 64, url=f"{base.replace('127.0.0.1', 'localhost')}/{i}/w.pt") for i in range(2)]
    try:
        with pytest.raises(WeightsError) as err:
            fetch(WeightSource("all-down", (*hub, *urls)), tmp_path / "cache", hub=Hub(tmp_path / "hf"))
    finally:
        closed.close()
    message = str(err.value)
    assert all(m.where in message for m in (*hub, *urls)), message
    assert message.count("host unreachable") == 4 and "CLIPDEMO_WEIGHTS=random" in message
    assert downloads == []  # refused at the probe: not one download began


# -- open_clip's formats: the mirror the Space will most likely use ------------------------------------------
@pytest.fixture(scope="module")
def open_clip_model():
    """open_clip's own CLIP class, as `ViT-B-32-quickgelu` builds it (quick GELU, OpenAI's layout and names), at
    the tiny preset's size: the file formats and the names are the point here, not the size."""
    open_clip = pytest.importorskip("open_clip")
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = open_clip.CLIP(embed_dim=32, vision_cfg=dict(image_size=32, layers=2, width=64, patch_size=16),
                               text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=2),
                               quick_gelu=True).eval()
    with torch.no_grad():  # OpenAI's released weights are fp16 values: make these so too (see the note below)
        for p in model.state_dict().values():
            p.copy_(p.half().float())
    return model


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_open_clip_files_load_to_open_clips_own_features(open_clip_model, fmt, tmp_path):
    """clipdemo's loader rounds weights through fp16 as clip.load does; on fp16-valued weights (what the
    real files hold) that changes nothing, so the features must equal open_clip's in fp32."""
    import clip

    from clipdemo.core import zeroshot as engine
    from clipdemo.core.labels import CIFAR100_CLASSES
    sd = {k: v.contiguous() for k, v in open_clip_model.state_dict().items()}
    path = tmp_path / f"open_clip_model.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save(sd, path)
    loaded = load_model(str(path), device="cpu")
    assert loaded.config == PRESETS["tiny"] and str(loaded.info.label).startswith("unverified checkpoint")
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # [4, 3, 32, 32]
    tokens = clip.tokenize([f"a photo of a {c}" for c in CIFAR100_CLASSES])  # [100, 77]
    with torch.inference_mode():
        ref_img = engine.normalise(open_clip_model.encode_image(pixels))  # [4, 32]
        ref_txt = engine.normalise(open_clip_model.encode_text(tokens))  # [100, 32]
        img = engine.normalise(loaded.model.encode_image(pixels))
        txt = engine.prompt_features(loaded.model, tokens)
    assert (img - ref_img).abs().max() <= 1e-5
    assert (txt - ref_txt).abs().max() <= 1e-5
    ours = (100 * img @ txt.T).softmax(-1).topk(5).indices
    theirs = (100 * ref_img @ ref_txt.T).softmax(-1).topk(5).indices
    assert torch.equal(ours, theirs)
