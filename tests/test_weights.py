"""The download chain against a loopback HTTP server standing in for the weight hosts."""

import hashlib
import socket

import pytest

from clipdemo.core.model import WeightsError
from clipdemo.weights.download import Hub, fetch
from clipdemo.weights.load import load_model
from clipdemo.weights.sources import WEIGHT_SOURCES, Mirror, WeightSource, known_release
from fixtures import loopback_server


def _source(base: str, sha: str, paths=("/cdn/ViT-B-32.pt", "/blob/ViT-B-32.pt")) -> WeightSource:
    return WeightSource("tiny", tuple(Mirror("tiny.pt", sha, url=base + p) for p in paths))


def test_the_registry_agrees_with_clip():
    """Against a source independent of the registry: openai-clip's own URL table, whose path holds the file's
    SHA-256 (the Space's front matter, which preloads the first mirror, is test_space_config's)."""
    import clip.clip

    hub_st, hub_bin, blob, cdn = WEIGHT_SOURCES["ViT-B/32"].mirrors
    assert cdn.url == clip.clip._MODELS["ViT-B/32"]  # clip.load's URL, tried last (openai/CLIP#516)
    assert blob.url.replace("blob.core.windows.net", "azureedge.net") == cdn.url
    assert cdn.sha256 == cdn.url.split("/")[-2] == blob.sha256
    assert known_release(clip.clip._MODELS["ViT-B/32"].split("/")[-2]) is not None  # openai's file is a release
    assert (hub_bin.repo_id, hub_bin.revision) == (hub_st.repo_id, hub_st.revision)  # one pinned commit
    assert hub_st.filename.endswith(".safetensors") and hub_bin.filename.endswith(".bin")


@pytest.mark.parametrize("kwargs, message", [
    (dict(sha256=None, url="https://x/y"), "a SHA-256 .* is required"),
    (dict(sha256="ab" * 16, url="https://x/y"), "a SHA-256 .* is required"),
    (dict(repo_id="a/b", revision="main"), "pinned revision"),
    (dict(url="https://x/y", repo_id="a/b", revision="0" * 40), "not both or neither"),
])
def test_a_mirror_without_a_pin_cannot_be_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Mirror("f.bin", **{"sha256": "0" * 64, **kwargs})


def test_first_host_down_second_used_then_cached_without_network(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    with loopback_server({"/cdn/ViT-B-32.pt": 503, "/blob/ViT-B-32.pt": blob}) as (base, hits):
        source = _source(base, sha)
        loaded = load_model("tiny", device="cpu", cache_dir=tmp_path, sources={"tiny": source}, hub=Hub(tmp_path))
        assert hits == ["/cdn/ViT-B-32.pt", "/blob/ViT-B-32.pt"]
    assert loaded.info.origin == base + "/blob/ViT-B-32.pt" and loaded.info.sha256 == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    # server gone: the verified cached file is used with no network at all
    again = load_model("tiny", device="cpu", cache_dir=tmp_path, sources={"tiny": source}, hub=Hub(tmp_path))
    assert again.info.sha256 == sha


def test_sha_mismatch_is_rejected_and_leaves_no_file(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    with loopback_server({"/cdn/ViT-B-32.pt": blob + b"x", "/blob/ViT-B-32.pt": 404}) as (base, _):
        source = _source(base, hashlib.sha256(blob).hexdigest())
        with pytest.raises(WeightsError) as err:
            fetch(source, tmp_path, hub=Hub(tmp_path))
    msg = str(err.value)
    assert "SHA-256 mismatch" in msg and ("HTTP Error 404" in msg or "Not Found" in msg)
    assert "CLIPDEMO_WEIGHTS=random" in msg
    assert list(tmp_path.iterdir()) == []


def test_corrupted_cache_file_is_replaced(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    (tmp_path / "tiny.pt").write_bytes(blob[:1000])  # a truncated leftover from some other tool
    with loopback_server({"/cdn/ViT-B-32.pt": blob}) as (base, hits):
        path, mirror = fetch(_source(base, hashlib.sha256(blob).hexdigest()), tmp_path, hub=Hub(tmp_path))
    assert path.read_bytes() == blob and hits == ["/cdn/ViT-B-32.pt"]


def test_no_download_allowed_and_nothing_cached(tmp_path):
    with pytest.raises(WeightsError, match=r"downloads are disabled \(CLIPDEMO_DOWNLOAD=0\)"):
        load_model("ViT-B/32", device="cpu", cache_dir=tmp_path, allow_download=False, hub=Hub(tmp_path / "hf"))


def test_unreachable_hosts_report_every_attempt(tmp_path):
    closed = socket.socket()  # bound and never listening: refused, and no other process can take the port
    closed.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(WeightsError) as err:
            fetch(_source(f"http://127.0.0.1:{closed.getsockname()[1]}", "0" * 64), tmp_path, hub=Hub(tmp_path),
                  timeout=5)
    finally:
        closed.close()
    assert str(err.value).count("Connection refused") == 2
