"""ZeroGPU readiness, tested on CPU: the app starts through its own start-up steps with `spaces` installed
and every model call wrapped in `spaces.GPU`; under a stand-in for ZeroGPU's decorator (which pickles
arguments and results, as ZeroGPU's worker process does, and evaluates each task's duration) the
predictions are unchanged; ZeroGPU's refusals reach the visitor as our sentence; the one setting picks
the path."""

from __future__ import annotations

import gradio as gr
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.core.labels import CIFAR100_CLASSES
from clipdemo.core.words import say
from clipdemo.fakes import notebook_top5
from clipdemo.io.cifar import open_cifar100
from clipdemo.serving import accel
from clipdemo.serving.runtime import Runtime
from clipdemo.serving.settings import Settings, from_env
from clipdemo.ui.app import start_runtime
from clipdemo.ui.common import GPU_REFUSALS
from uiserver import running_app

TASKS = ("encode_images", "encode_prompts", "encode_multilingual", "attention", "relevancy", "tower_summary")


def _settings(tiny_ckpts, cifar_root, tmp_path) -> Settings:
    return Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                    allow_download=False, backend="eager", search_index=False)


@pytest.fixture
def app(tiny_ckpts, cifar_root, tmp_path):
    """The app as `main()` starts it (every task wrapped in spaces.GPU, model load), with the tiny checkpoint."""
    rt = start_runtime(_settings(tiny_ckpts, cifar_root, tmp_path))
    rt.settle(120)
    with running_app(rt) as (url, _):
        yield rt, Client(url, verbose=False, download_files=False)


class FakeZeroGPU(accel.Contract):
    """ZeroGPU's contract (accel.Contract: pickled arguments and results, CPU results, durations evaluated),
    and its quota refusal when `refuse` holds a message."""

    refuse: str | None = None

    def before(self, name: str) -> None:
        if self.refuse:
            raise gr.Error(self.refuse, title="ZeroGPU quota exceeded")


@pytest.fixture
def contract_app(tiny_ckpts, cifar_root, tmp_path):
    """The app with every model task wrapped in a FakeZeroGPU (passed to its runtime, as the app passes
    spaces.GPU's): the runtime, a client, and the fake with its record of calls."""
    fake = FakeZeroGPU()
    rt = Runtime(_settings(tiny_ckpts, cifar_root, tmp_path), tasks=accel.ModelCalls(gpu=fake))
    rt.start()
    rt.settle(120)
    assert {name for name, _ in fake.calls} == {"encode_prompts"}  # start-up encoded the default labels through it
    fake.calls.clear()
    with running_app(rt) as (url, _):
        yield rt, Client(url, verbose=False, download_files=False), fake


def _upload(tmp_path):
    path = tmp_path / "upload.png"
    Image.effect_mandelbrot((120, 90), (-2, -1.2, 1, 1.2), 40).convert("RGB").save(path)
    return path


def test_the_app_starts_and_predicts_with_spaces_wrapping_every_model_call(app, tmp_path, cifar_root):
    import sys

    rt, c = app
    assert "spaces" in sys.modules and rt.tasks.wrapped and not rt.tasks.zerogpu  # spaces.GPU, off ZeroGPU
    status = c.predict(api_name="/status")[0]
    assert "runs on **CPU, fp32**" in status
    zs, data = rt.service(), open_cifar100(cifar_root)
    for image, served in ((data.image(15), lambda: c.predict(15, 5, api_name="/predict_index")[2]),
                          (Image.open(_upload(tmp_path)).convert("RGB"),
                           lambda: c.predict(handle_file(str(_upload(tmp_path))), 5, api_name="/predict_image")[1])):
        _, row = notebook_top5(zs.loaded.model, zs.loaded.preprocess, image, CIFAR100_CLASSES)  # [100]
        every = dict(zip(CIFAR100_CLASSES, row.tolist()))
        got = [(x["label"], x["confidence"]) for x in served()["confidences"]]
        assert [lab for lab, _ in got] == sorted(every, key=every.get, reverse=True)[:5]
        assert max(abs(p - every[lab]) for lab, p in got) <= 1e-5


def test_under_zerogpus_contract_predictions_are_unchanged(contract_app, tmp_path):
    rt, c, fake_zerogpu = contract_app
    zs, upload = rt.service(), Image.open(_upload(tmp_path)).convert("RGB")
    _, row = notebook_top5(zs.loaded.model, zs.loaded.preprocess, upload, CIFAR100_CLASSES)  # [100]
    got = c.predict(handle_file(str(_upload(tmp_path))), 5, api_name="/predict_image")[1]["confidences"]
    assert max(abs(x["confidence"] - row[CIFAR100_CLASSES.index(x["label"])].item()) for x in got) <= 1e-5
    assert [name for name, _ in fake_zerogpu.calls] == ["encode_images"]  # the labels were encoded at start-up
    c.predict("a b c\nd e f", "a photo of a {}", "clip", api_name="/set_labels")  # new labels: one prompt task
    c.predict(3, 5, api_name="/predict_index")  # an image not yet encoded: one image task
    c.predict("rollout", "mean", api_name="/attention")  # the attention view of that image
    c.predict(1, api_name="/architecture")  # torchinfo summaries of both towers
    c.predict("a b c", "", api_name="/relevancy")  # why that image matched "a b c"
    names = [name for name, _ in fake_zerogpu.calls]
    assert names[1:] == ["encode_prompts", "encode_images", "attention", "tower_summary", "tower_summary",
                         "relevancy"], names  # the rollout beside the map reuses the attention task's trace
    assert all(isinstance(s, int) and 10 <= s <= 60 for _, s in fake_zerogpu.calls)  # every duration evaluated
    fake_zerogpu.calls.clear()
    turkish = c.predict("aslan\nkaplan\ndeve", "bir {} fotoğrafı", "multilingual", api_name="/set_labels")[0]
    assert "Text encoder: **Any language (multilingual encoder)**" in turkish
    assert [name for name, _ in fake_zerogpu.calls] == ["encode_multilingual"]  # the tower is a GPU task too
    assert {x["label"] for x in c.predict(3, 3, api_name="/predict_index")[2]["confidences"]} == {"aslan", "kaplan",
                                                                                                 "deve"}


def test_a_zerogpu_refusal_reaches_the_visitor_as_a_sentence(contract_app, tmp_path):
    _, c, fake_zerogpu = contract_app
    fake_zerogpu.refuse = "You have exceeded your free GPU quota (30s requested vs. 4s left). <a href='x'>Try again</a> in 0:12:00."
    with pytest.raises(Exception) as err:
        c.predict(handle_file(str(_upload(tmp_path))), 5, api_name="/predict_image")
    message = str(err.value)
    assert say(GPU_REFUSALS["ZeroGPU quota exceeded"]) in message
    assert "ZeroGPU said: You have exceeded your free GPU quota (30s requested vs. 4s left). Try again in 0:12:00." \
        in message and "<a" not in message
    fake_zerogpu.refuse = None
    assert c.predict(api_name="/ping") == "pong"


@pytest.mark.parametrize("env, device", [
    ({}, "auto"),
    ({"SPACES_ZERO_GPU": "true"}, "zerogpu"),  # what Hugging Face sets on ZeroGPU hardware
    ({"SPACES_ZERO_GPU": "true", "CLIPDEMO_DEVICE": "cpu"}, "cpu"),  # the setting wins
    ({"CLIPDEMO_DEVICE": "CUDA"}, "cuda"),
])
def test_one_setting_chooses_the_path(env, device):
    assert from_env(env).device == device
    path = accel.path_for(device)
    assert path.name == {"auto": "cpu", "zerogpu": "zerogpu", "cpu": "cpu", "cuda": "cuda"}[device]
    assert path.onnx == (path.name == "cpu") and path.load_before_launch == (path.name == "zerogpu")


def test_a_wrong_device_setting_is_a_sentence():
    with pytest.raises(ValueError, match="CLIPDEMO_DEVICE must be auto, cpu, cuda or zerogpu, not 'tpu'"):
        from_env({"CLIPDEMO_DEVICE": "tpu"})


def test_zerogpu_on_a_machine_without_cuda_says_why():
    from clipdemo.core.model import resolve_device
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="ZeroGPU was asked for"):  # a Refusal is a ValueError
        resolve_device("zerogpu")


def test_loading_before_launch_ends_ready_or_failed(tiny_ckpts, tmp_path, cifar_root):
    """ZeroGPU's start: the model is loaded before `start` returns (here on CPU), the rest in the background."""
    from clipdemo.serving.runtime import ModelState

    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, search_index=False))
    rt.start(wait_for_model=True)
    assert rt.status.state is ModelState.READY and rt.service() is not None
    rt.settle(60)
    broken = Runtime(Settings(weights=str(tmp_path / "missing.pt"), cache_dir=tmp_path, data_root=cifar_root,
                              allow_download=False))
    broken.start(wait_for_model=True)
    assert broken.status.state is ModelState.FAILED and "missing.pt" in str(broken.status.message)
    assert broken.settled


def test_on_zerogpu_a_cpu_model_never_goes_to_a_gpu_worker_and_bad_inputs_never_reach_one(tiny_loaded):
    """ZeroGPU forks its worker once and reuses it: a model made later (the architecture stand-in, on CPU) is
    not in it, so CPU models run in process there; and an input error is the caller's, before any GPU task."""
    from clipdemo.serving.service import ZeroShot

    on_zerogpu = FakeZeroGPU()
    ZeroShot(tiny_loaded, tasks=accel.ModelCalls(gpu=on_zerogpu, zerogpu=True)).inside.tower_summary("visual", 1)  # a CPU model
    assert on_zerogpu.calls == []  # ran in process, not through the (stand-in) GPU wrapper
    elsewhere = FakeZeroGPU()
    zs = ZeroShot(tiny_loaded, tasks=accel.ModelCalls(gpu=elsewhere))
    with pytest.raises(ValueError, match="Depth must be between 1 and 4, not 7"):
        zs.inside.tower_summary("visual", 7)
    with pytest.raises(ValueError, match="Unknown tower 'audio'"):
        zs.inside.tower_summary("audio", 2)
    assert elsewhere.calls == []  # refused before any task
    zs.inside.tower_summary("text", 1)
    assert [name for name, _ in elsewhere.calls] == ["tower_summary"]  # off ZeroGPU: through the wrapper


def test_where_the_model_loads_before_launch_the_multilingual_tower_does_too(tiny_ckpts, tmp_path, cifar_root,
                                                                          monkeypatch):
    """On ZeroGPU a GPU worker is forked with what the process holds: the tower is loaded with the model, before
    `start` returns (a path that loads before launch, on CPU here); elsewhere it waits for its first use."""
    import dataclasses

    for before, loaded in ((True, True), (False, False)):
        path = dataclasses.replace(accel.PATHS["cpu"], load_before_launch=before)
        monkeypatch.setattr(accel, "path_for", lambda device, _p=path: _p)
        rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                              allow_download=False, search_index=False))
        rt.start(wait_for_model=True)
        assert (rt.service().tower_loaded is not None) == loaded
        rt.settle(60)
