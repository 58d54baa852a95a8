"""The rooms of the codebase hold: one owner of model access, and start-up never drops stored work."""

import ast
import threading
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parent.parent / "clipdemo"
# The service layer owns the gate and the model; the pure core below it takes a model as an argument.
SERVICE = {"service.py"}
CORE_TAKING_A_MODEL = {"accel.py", "engine.py", "inside.py", "architecture.py", "backends.py", "model.py", "notebook.py",
                       "fakes.py"}
GATE_NAMES = {"_gate", "model_lock", "_model_call", "hold"}


def violations(source: str, name: str) -> list[str]:
    """Where `source` reads `.model` or touches the model gate, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            if node.attr == "model" and name not in SERVICE | CORE_TAKING_A_MODEL:
                found.append(f"{name}:{node.lineno}: reads .model")
            if node.attr in GATE_NAMES and name not in SERVICE:
                found.append(f"{name}:{node.lineno}: touches the model gate ({node.attr})")
    return found


def test_the_checker_catches_both_kinds_of_trespass():
    bad = "def f(zs):\n    with zs._gate:\n        return zs.loaded.model.encode_image(x)\n"
    assert violations(bad, "ui/tabs/predict.py") == ["ui/tabs/predict.py:2: touches the model gate (_gate)",
                                                     "ui/tabs/predict.py:3: reads .model"]
    assert violations(bad, "service.py") == []
    assert violations("m.model(x)", "engine.py") == []


def test_only_the_service_layer_takes_the_lock_or_reads_model():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20 and any(f.parent.name == "tabs" for f in files)
    found = [v for f in files for v in violations(f.read_text(encoding="utf-8"), str(f.relative_to(PACKAGE)))]
    assert found == []


def test_only_the_ui_imports_gradio():
    for f in PACKAGE.rglob("*.py"):
        if "ui" not in f.relative_to(PACKAGE).parts:
            tree = ast.parse(f.read_text(encoding="utf-8"))
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not any(m.split(".")[0] == "gradio" for m in names), f


def test_files_stay_small():
    sizes = {str(f.relative_to(PACKAGE)): len(f.read_text(encoding="utf-8").splitlines()) for f in PACKAGE.rglob("*.py")}
    assert {f: n for f, n in sizes.items() if n > 300} == {}


@pytest.mark.slow
def test_a_click_while_the_backend_is_chosen_keeps_its_stored_feature(tiny_ckpts, tiny_loaded, cifar_root, tmp_path,
                                                                        monkeypatch):
    """Start-up merges the saved features file into the store; it never replaces what a visitor's click stored."""
    from gradio_client import Client

    from clipdemo import backends
    from clipdemo.data import open_cifar100
    from clipdemo.features import ImageFeatureStore, default_path
    from clipdemo.runtime import Runtime
    from clipdemo.service import ZeroShot
    from clipdemo.settings import Settings
    from uiserver import running_app

    data = open_cifar100(cifar_root)
    ref = ZeroShot(tiny_loaded)
    saved = ImageFeatureStore(ref.info.identity, len(data), ref.config.embed_dim)
    saved.put(list(range(40)), ref.image_features([data.image(i) for i in range(40)]))
    saved.save(default_path(tmp_path, ref.info.sha256))

    choosing, release = threading.Event(), threading.Event()
    real_select = backends.select

    def slow_select(*args, **kwargs):
        choosing.set()
        assert release.wait(120)
        return real_select(*args, **kwargs)

    monkeypatch.setattr(backends, "select", slow_select)
    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, backend="eager"))
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
