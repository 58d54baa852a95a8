"""Faults, each through a real server start: weights missing/unreachable/wrong/truncated/unsafe, dataset
missing/corrupt, and a handler that crashes. The page still works where it can and says why where it can't."""

import logging
import os
import shutil
import socket

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.core.words import Refusal
from clipdemo.weights import sources as weights_mod
from clipdemo.serving.runtime import Runtime
from clipdemo.serving.settings import Settings
from fixtures import loopback_server
from uiserver import running_app

pytestmark = pytest.mark.slow


def _client(url):
    return Client(url, verbose=False, download_files=False)


def _image(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (16, 16), (5, 6, 7)).save(path)
    return handle_file(str(path))


def _check_weights_fault(tmp_path, settings, expect, caplog, monkeypatch, served=False):
    """The start ends failed, saying why in the status line (details collapsed, no server path) and the log; an
    upload is refused with the sentence; no model is half loaded. `served`: through a real server, where the
    Architecture tab still works (on a random stand-in) and the server answers after the refusal."""
    import gradio as gr

    from uiserver import built_page

    rt = Runtime(settings)
    caplog.set_level(logging.ERROR, logger="clipdemo.serving.runtime")
    rt.start()
    with pytest.raises(Refusal, match="could not be loaded"):
        rt.service(timeout=60)
    if served:
        with running_app(rt) as (url, _):
            c = _client(url)
            status = c.predict(api_name="/status")[0].replace("\\", "")
            card, *_ = c.predict(2, api_name="/architecture")  # the architecture tab still works
            assert card["vision"]["width"] == 768 and "random weights" in card["note"]
            with pytest.raises(Exception, match="The model could not be loaded"):
                c.predict(_image(tmp_path), 3, api_name="/predict_image")
            assert c.predict(api_name="/ping") == "pong"  # the server is alive
    else:
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # files here count as uploads
        page = built_page(rt)
        status = page.status.status()[page.status.line].replace("\\", "")
        Image.new("RGB", (16, 16), (5, 6, 7)).save(tmp_path / "x.png")
        with pytest.raises(gr.Error, match="The model could not be loaded"):
            page.predict.predict_image(str(tmp_path / "x.png"), 3, page.labels.state.value, None, None, lambda *a, **k: None)
    assert "The model could not be loaded" in status and expect in status, status
    assert "<details>" in status and str(tmp_path) not in status  # details collapsed, no server path
    assert rt._zs is None  # no half-loaded model
    assert any(expect in r.getMessage() for r in caplog.records)  # and the log says it too


def _settings(tmp_path, **kw):
    base = dict(weights="ViT-B/32", cache_dir=tmp_path / "cache", data_root=tmp_path / "data", allow_download=True)
    return Settings(**{**base, **kw})


def test_weights_missing(tmp_path, caplog, monkeypatch):
    _check_weights_fault(tmp_path, _settings(tmp_path, allow_download=False), "downloads are disabled", caplog,
                         monkeypatch, served=True)


def test_weights_unreachable(tmp_path, caplog, monkeypatch):
    closed = socket.socket()  # bound and never listening: refused, and no other process can take the port
    closed.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{closed.getsockname()[1]}"
    mirrors = tuple(weights_mod.Mirror("ViT-B-32.pt", "0" * 64, url=f"{base}/{i}/ViT-B-32.pt") for i in range(2))
    monkeypatch.setitem(weights_mod.WEIGHT_SOURCES, "ViT-B/32", weights_mod.WeightSource("ViT-B/32", mirrors))
    try:
        _check_weights_fault(tmp_path, _settings(tmp_path), "Connection refused", caplog, monkeypatch)
    finally:
        closed.close()


def test_weights_wrong_sha(tmp_path, caplog, monkeypatch, tiny_ckpts):
    blob = tiny_ckpts["jit"].read_bytes()
    with loopback_server({"/w/ViT-B-32.pt": blob}) as (base, hits):
        mirror = weights_mod.Mirror("ViT-B-32.pt", "f" * 64, url=f"{base}/w/ViT-B-32.pt")
        monkeypatch.setitem(weights_mod.WEIGHT_SOURCES, "ViT-B/32", weights_mod.WeightSource("ViT-B/32", (mirror,)))
        _check_weights_fault(tmp_path, _settings(tmp_path), "SHA-256 mismatch", caplog, monkeypatch)
        assert hits == ["/w/ViT-B-32.pt"]
    assert not (tmp_path / "cache" / "ViT-B-32.pt").exists() and not list((tmp_path / "cache").glob("*.part"))


def test_weights_truncated(tmp_path, caplog, tiny_ckpts, monkeypatch):
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(tiny_ckpts["jit"].read_bytes()[:5000])
    _check_weights_fault(tmp_path, _settings(tmp_path, weights=str(bad)), "not a loadable checkpoint", caplog,
                         monkeypatch)


def test_weights_unsafe_pickle(tmp_path, caplog, monkeypatch):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    bad = tmp_path / "evil.pt"
    torch.save({"visual.proj": Evil()}, bad)
    _check_weights_fault(tmp_path, _settings(tmp_path, weights=str(bad)), "refused as unsafe", caplog, monkeypatch)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_dataset_fault_keeps_uploads_working(tmp_path, tiny_ckpts, cifar_root, damage):
    data_root = tmp_path / "data"
    if damage == "corrupt":
        shutil.copytree(cifar_root, data_root)
        with open(data_root / "cifar-100-python" / "test", "r+b") as f:
            f.seek(1000)
            f.write(b"\0" * 64)
    rt = Runtime(_settings(tmp_path, weights=str(tiny_ckpts["state_dict"]), data_root=data_root,
                           allow_download=False))
    rt.start()
    with running_app(rt) as (url, _):
        rt.service(timeout=60)
        c = _client(url)
        with pytest.raises(Exception, match="CIFAR-100 is not available under"):
            c.predict(15, 5, api_name="/predict_index")
        assert len(c.predict(_image(tmp_path), 3, api_name="/predict_image")[1]["confidences"]) == 3
        status = c.predict(api_name="/status")[0]
        assert "CIFAR-100 test images are unavailable" in status and "tiny-state.pt" in status.replace("\\", "")


def test_a_crashing_handler_does_not_kill_the_server(tmp_path, tiny_loaded, cifar_root, monkeypatch):
    from uiserver import runtime_for

    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    with running_app(rt) as (url, _):
        c = _client(url)
        import clipdemo.ui.tabs.predict as predict_tab
        real = predict_tab.predict_with
        calls = []

        def flaky(*args, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("simulated bug")
            return real(*args, **kwargs)

        monkeypatch.setattr(predict_tab, "predict_with", flaky)
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError) as err:
            c.predict(15, 5, api_name="/predict_index")
        # what the visitor sees: Gradio's generic sentence, never the internals (show_error=False)
        assert "simulated bug" not in str(err.value) and "RuntimeError" not in str(err.value)
        assert "has raised an exception" in str(err.value)
        assert c.predict(15, 5, api_name="/predict_index")[2]["label"]  # the next request succeeds
        assert len(calls) == 2
