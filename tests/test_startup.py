"""Start-up: the real app (`python app.py`) starts while every CPU it has is held by busy loops, as on a crowded host;
its background thread imports nothing half made; and the work it does after the model never drops a visitor's."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
import torch

from uiserver import app_process


@pytest.fixture
def busy_cpus():
    """A busy-looping process on every CPU this test may use (both of a 2-core machine; under `make test`'s two
    workers, the one its worker owns), for the length of a test."""
    import os
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_the_app_starts_twice_while_both_cpus_are_busy(busy_cpus, tmp_path):
    """Each start serves the page and its status line reaches "Model:" (no import race between the thread that
    loads the model and the one that builds the page). The next test is a third start on busy CPUs, with the
    search index on."""
    from gradio_client import Client

    env = {"CLIPDEMO_WEIGHTS": "random:tiny", "CLIPDEMO_CACHE": str(tmp_path / "cache"),
           "CLIPDEMO_DATA": str(tmp_path / "no-data"), "CLIPDEMO_DOWNLOAD": "0", "CLIPDEMO_BACKEND": "eager"}
    for run in range(2):
        with app_process(env, tmp_path / f"run{run}.log") as (url, _):
            status = Client(url, verbose=False, download_files=False).predict(api_name="/status")[0]
            for _ in range(240):  # the model loads in the background: up to two minutes
                if "Model:" in status or "❌" in status:
                    break
                time.sleep(0.5)
                status = Client(url, verbose=False, download_files=False).predict(api_name="/status")[0]
            assert "**Model:**" in status, f"start {run + 1}: {status}"


@pytest.mark.slow
def test_with_the_search_index_on_the_app_starts_on_busy_cpus_and_searches_what_it_has(busy_cpus, tmp_path,
                                                                                        tiny_ckpts, cifar_root):
    """The Space's default: after the model, a background thread encodes the test split for search. With both CPUs
    busy the app still starts, counts the index in its status line, searches what is encoded, and completes it."""
    import hashlib

    from gradio_client import Client

    md5 = {name: hashlib.md5((cifar_root / "cifar-100-python" / name).read_bytes()).hexdigest()
           for name in ("train", "test", "meta")}
    env = {"CLIPDEMO_WEIGHTS": str(tiny_ckpts["state_dict"]), "CLIPDEMO_CACHE": str(tmp_path / "cache"),
           "CLIPDEMO_DATA": str(cifar_root), "CLIPDEMO_DOWNLOAD": "0", "CLIPDEMO_BACKEND": "eager",
           "CLIPDEMO_SEARCH_INDEX": "1"}
    with app_process(env, tmp_path / "index.log", cifar_md5=md5) as (url, _):
        client, seen = Client(url, verbose=False, download_files=False), []
        for _ in range(480):  # up to four minutes on busy CPUs
            status = client.predict(api_name="/status")[0]
            seen.append(status)
            if (building := re.search(r"\*\*search:\*\* ([\d,]+) of", status)) and building[1] != "0":
                found = client.predict("a lion", 5, api_name="/search")  # what is encoded so far
                assert 1 <= len(found) <= 5 and {"index", "true_label", "cosine"} == set(found[0])
            if "**Model:**" in status and "search:" not in status and list((tmp_path / "cache").glob("cifar100-*")):
                break
            time.sleep(0.5)
    assert "**Model:**" in seen[-1] and "❌" not in seen[-1], seen[-1]
    assert any("**search:**" in s for s in seen)  # the status line counted the build ...
    assert list((tmp_path / "cache").glob("cifar100-test-features-*-float32.pt"))  # ... which ended saved


IMPORTED_AT_THREAD_START = """
import sys, threading
from clipdemo.serving.runtime import BACKGROUND_IMPORTS, Runtime
from clipdemo.serving.settings import Settings
seen = {}
def record(self):  # what is imported, and complete, when the start-up thread would begin
    seen.update({n: not getattr(getattr(sys.modules.get(n), "__spec__", None), "_initializing", True)
                 for n in ("clip", "clip.clip", "clip.model", *BACKGROUND_IMPORTS)})
threading.Thread.start = record
Runtime(Settings(weights="random:tiny", allow_download=False)).start()
print(sorted(n for n, done in seen.items() if not done))
"""


def test_start_finishes_the_background_imports_before_its_thread_begins():
    """In a fresh interpreter: when `Runtime.start` starts its thread, clip and everything the thread imports
    lazily are already imported whole (the page's thread never races it for a half-made module)."""
    out = subprocess.run([sys.executable, "-c", IMPORTED_AT_THREAD_START], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_click_while_the_backend_is_chosen_keeps_its_stored_feature(tiny_ckpts, tiny_loaded, cifar_root, tmp_path,
                                                                        monkeypatch):
    """Start-up merges the saved features file into the store; it never replaces what a visitor's click stored."""
    from gradio_client import Client

    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving import backends
    from clipdemo.serving.features import ImageFeatureStore
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.service import ZeroShot
    from clipdemo.serving.settings import Settings
    from uiserver import running_app

    data = open_cifar100(cifar_root)
    ref = ZeroShot(tiny_loaded)
    saved = ImageFeatureStore(ref.features_identity, len(data), ref.loaded.config.embed_dim)
    saved.put(list(range(40)), ref.image_features([data.image(i) for i in range(40)]))
    saved.save(ref.features_path(tmp_path))

    choosing, release = threading.Event(), threading.Event()
    real_select = backends.select

    def slow_select(*args, **kwargs):
        choosing.set()
        assert release.wait(120)
        return real_select(*args, **kwargs)

    monkeypatch.setattr(backends, "select", slow_select)
    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, backend="eager", search_index=False))
    rt.start()
    with running_app(rt) as (url, _):
        assert choosing.wait(120) and not rt.settled  # the model is ready, the backend choice is under way
        label = Client(url, verbose=False, download_files=False).predict(500, 3, api_name="/predict_index")[2]
        assert len(label["confidences"]) == 3
        clicked = rt.service().cifar.get(500)
        release.set()
        rt.settle(120)
    store = rt.service().cifar
    assert len(store) == 41  # the 40 saved rows merged in, and the click's row kept
    assert torch.equal(store.get(500), clicked)
    assert torch.allclose(store.get(500), ref.image_features([data.image(500)])[0], atol=1e-6)
    assert torch.equal(store.gather(list(range(40))), saved.gather(list(range(40))))
