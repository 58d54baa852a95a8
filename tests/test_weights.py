"""The download chain against a loopback HTTP server standing in for the weight hosts."""

import hashlib

import pytest

from clipdemo.model import load_model
from clipdemo.weights import WEIGHT_SOURCES, Mirror, WeightsError, WeightSource, fetch
from fixtures import loopback_server


def _source(base: str, sha: str | None, paths=("/cdn/ViT-B-32.pt", "/blob/ViT-B-32.pt")) -> WeightSource:
    return WeightSource("tiny", tuple(Mirror(base + p, "tiny.pt", sha, "jit") for p in paths))


def test_real_registry_matches_clip_and_the_issue():
    import clip.clip

    mirrors = WEIGHT_SOURCES["ViT-B/32"].mirrors
    assert mirrors[0].url == clip.clip._MODELS["ViT-B/32"]
    assert mirrors[1].url.replace("blob.core.windows.net", "azureedge.net") == mirrors[0].url
    assert mirrors[0].sha256 == mirrors[0].url.split("/")[-2] == mirrors[1].sha256
    assert "timm/vit_base_patch32_clip_224.openai" in mirrors[2].url


def test_first_host_down_second_used_then_cached_without_network(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    with loopback_server({"/cdn/ViT-B-32.pt": 503, "/blob/ViT-B-32.pt": blob}) as (base, hits):
        source = _source(base, sha)
        loaded = load_model("tiny", device="cpu", cache_dir=tmp_path, sources={"tiny": source})
        assert hits == ["/cdn/ViT-B-32.pt", "/blob/ViT-B-32.pt"]
    assert loaded.info.origin == base + "/blob/ViT-B-32.pt" and loaded.info.sha256 == sha
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
    # server gone: the verified cached file is used with no network at all
    again = load_model("tiny", device="cpu", cache_dir=tmp_path, sources={"tiny": source})
    assert again.info.sha256 == sha


def test_sha_mismatch_is_rejected_and_leaves_no_file(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    with loopback_server({"/cdn/ViT-B-32.pt": blob + b"x", "/blob/ViT-B-32.pt": 404}) as (base, _):
        source = _source(base, hashlib.sha256(blob).hexdigest())
        with pytest.raises(WeightsError) as err:
            fetch(source, tmp_path)
    msg = str(err.value)
    assert "SHA-256 mismatch" in msg and ("HTTP Error 404" in msg or "Not Found" in msg)
    assert "CLIPDEMO_WEIGHTS=random" in msg
    assert list(tmp_path.iterdir()) == []


def test_corrupted_cache_file_is_replaced(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["jit"].read_bytes()
    (tmp_path / "tiny.pt").write_bytes(blob[:1000])  # a truncated leftover from some other tool
    with loopback_server({"/cdn/ViT-B-32.pt": blob}) as (base, hits):
        path, mirror = fetch(_source(base, hashlib.sha256(blob).hexdigest()), tmp_path)
    assert path.read_bytes() == blob and hits == ["/cdn/ViT-B-32.pt"]


def test_unchecksummed_mirror_pins_hash_on_first_download(tiny_ckpts, tmp_path):
    blob = tiny_ckpts["state_dict"].read_bytes()
    with loopback_server({"/hf/model.bin": blob}) as (base, hits):
        source = WeightSource("hf", (Mirror(base + "/hf/model.bin", "hf.bin", None, "state_dict"),))
        path, _ = fetch(source, tmp_path)
        assert (tmp_path / "hf.bin.sha256").read_text().strip() == hashlib.sha256(blob).hexdigest()
        fetch(source, tmp_path)
        assert hits == ["/hf/model.bin"]  # the second fetch used the pinned cache
        path.write_bytes(blob[:-1])  # tampered after download: no longer trusted, fetched again
        fetch(source, tmp_path)
        assert len(hits) == 2


def test_no_download_allowed_and_nothing_cached(tmp_path):
    with pytest.raises(WeightsError, match=r"downloads are disabled \(CLIPDEMO_DOWNLOAD=0\)"):
        load_model("ViT-B/32", device="cpu", cache_dir=tmp_path, allow_download=False)


def test_unreachable_hosts_report_every_attempt(tmp_path):
    with loopback_server({}) as (base, _):
        pass  # the port is closed now: connection refused
    with pytest.raises(WeightsError) as err:
        fetch(_source(base, "0" * 64), tmp_path, timeout=5)
    assert str(err.value).count("Connection refused") == 2
