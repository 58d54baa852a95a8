"""The served path against the notebook: full-size ViT-B/32 (seeded random weights), the default backend
choice (`auto`: ONNX Runtime after its parity check), index and upload predictions through a real server,
probabilities within 1e-5 of the notebook's code (`clipdemo.fakes.notebook_top5`) run verbatim."""

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.serving import runtime as startup
from clipdemo.io.cifar import open_cifar100
from clipdemo.fakes import notebook_top5
from clipdemo.core.labels import CIFAR100_CLASSES
from clipdemo.serving.runtime import Runtime
from clipdemo.serving.settings import Settings
from uiserver import running_app

pytestmark = pytest.mark.slow
TOL = 1e-5


def test_served_predictions_match_the_notebook(vitb32, vitb32_cache, cifar_root, tmp_path):
    settings = Settings(weights="random", seed=0, cache_dir=vitb32_cache, data_root=cifar_root, allow_download=False,
                        backend="auto", search_index=False)
    rt = Runtime(settings, loaded=vitb32)
    zs = rt.service()
    note = startup.speed_up(zs, settings)  # what a Space start does after "ready": the exported file, parity check
    assert zs.encoder.name == "onnxruntime", note

    data = open_cifar100(cifar_root)
    upload = Image.effect_mandelbrot((300, 200), (-2, -1.2, 1, 1.2), 50).convert("RGB")
    path = tmp_path / "upload.png"
    upload.save(path)
    with running_app(rt) as (url, _):
        c = Client(url, verbose=False, download_files=False)
        for image, served in ((data.image(15), lambda: c.predict(15, 20, api_name="/predict_index")[2]),
                              (Image.open(path).convert("RGB"),
                               lambda: c.predict(handle_file(str(path)), 20, api_name="/predict_image")[1])):
            _, row = notebook_top5(vitb32.model, vitb32.preprocess, image, CIFAR100_CLASSES)  # [100]
            every = dict(zip(CIFAR100_CLASSES, row.tolist()))
            top5 = sorted(every, key=every.get, reverse=True)[:5]
            for _ in range(2):  # the index path: encoded on the first call, from the feature store on the second
                got = [(x["label"], x["confidence"]) for x in served()["confidences"]]
                assert len(got) == 20 and [lab for lab, _ in got][:5] == top5
                assert max(abs(p - every[lab]) for lab, p in got) <= TOL
