"""Weights are labelled with what is known of them: a verified release only by its SHA-256."""

import pytest

from clipdemo.weights import sources as weights
from clipdemo.weights.load import load_model
def test_a_file_of_no_known_release_is_an_unverified_checkpoint(tiny_ckpts):
    info = load_model(str(tiny_ckpts["state_dict"])).info
    assert not info.verified and info.trained
    assert str(info.label) == f"unverified checkpoint tiny-state.pt, SHA-256 {info.sha256[:12]}…"


def test_random_weights_saved_to_a_file_are_not_called_trained_or_verified(tmp_path):
    from clipdemo.fakes import write_full_size_checkpoint
    path = write_full_size_checkpoint(tmp_path / "ViT-B-32.pt")  # random weights, in the official file format
    info = load_model(str(path)).info
    assert not info.verified and str(info.label).startswith("unverified checkpoint ViT-B-32.pt, SHA-256 ")
    assert "OpenAI" not in str(info.label)


def test_only_a_known_hash_is_labelled_as_the_release(tiny_ckpts, monkeypatch):
    digest = weights.sha256_file(tiny_ckpts["jit"])
    monkeypatch.setitem(weights.KNOWN_RELEASES, digest, "OpenAI ViT-B/32")
    assert str(load_model(str(tiny_ckpts["jit"])).info.label) == "OpenAI ViT-B/32 (SHA-256 verified)"
    assert str(load_model(str(tiny_ckpts["state_dict"])).info.label).startswith("unverified checkpoint")
    assert weights.known_release(weights.WEIGHT_SOURCES["ViT-B/32"].mirrors[0].sha256) == "OpenAI ViT-B/32"


@pytest.mark.parametrize("verified", [False, True])
def test_the_app_and_cli_say_unverified(tiny_ckpts, cifar_root, tmp_path, monkeypatch, capsys, verified):
    from clipdemo.cli import main
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    from uiserver import built_page
    if verified:
        monkeypatch.setitem(weights.KNOWN_RELEASES, weights.sha256_file(tiny_ckpts["state_dict"]), "Test release")
    loaded = load_model(str(tiny_ckpts["state_dict"]))
    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, search_index=False), loaded=loaded)
    page = built_page(rt)
    line = page.status.status()[page.status.line].replace("\\", "")
    ran = list(page.evaluate.run("first", 20, 1, 0, "single", "cifar100", None, lambda *a, **k: None))
    summary = ran[-1][page.evaluate.summary]
    monkeypatch.setenv("CLIPDEMO_DATA", str(cifar_root))
    assert main(["predict", "--index", "3", "--weights", str(tiny_ckpts["state_dict"])]) == 0
    out = capsys.readouterr().out
    if verified:
        assert "⚠️" not in line and "Test release (SHA-256 verified)" in line
        assert "unverified" not in summary and "unverified" not in out
    else:
        assert "⚠️ **unverified checkpoint tiny-state.pt, SHA-256" in line
        assert "These weights are an unverified checkpoint" in summary
        assert "Note: an unverified checkpoint (its SHA-256 is no known release)." in out
