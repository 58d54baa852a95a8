"""Side-by-side speed and memory figures for clipdemo on this machine (`make bench`, `make bench QUICK=1`).

Every ratio is measured in one run, both sides on the same machine and interleaved (baseline, ours,
baseline, ours, ...), and printed with each side's min / median / max; the ratio is of the medians.
The model is a full-size ViT-B/32 with seeded random weights (same shapes and cost as the real one)
and CIFAR-100 is a synthetic split in the real on-disk format: the figures are about speed, never
accuracy. The run also measures this machine's fp32 matmul floor, so R3 reads as distance from it, and
prints the cost table of `bench.cost` (each typed endpoint's server CPU beside its model work), and search's
figures (`bench.search`: R10 to R12, server-side latencies, the brute-force curve to a million vectors), and the
multilingual text tower's (`bench.multilingual`: R13, R14, its RSS and first use after start), and your labelled
data's (`bench.yourdata`: R15, R16), and the CLIP family's ViT image towers on this CPU (`bench.family`, written to
the cache; `make family-cost` publishes them to `clipdemo/io/family_cost.json` for the Architecture tab). Ends with one line: `ratios: R1=<x> R2=<x> ... R16=<x>`.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from PIL import Image

from bench.common import rss_mb, served_app, stand_ins, wait_ready
from bench import family, multilingual, search, yourdata
from bench.cost import cost_table
from bench.peers import HFZeroShot, floor_report
from bench.timing import paired, report
from clipdemo.core import zeroshot as engine
from clipdemo.serving import backends
from clipdemo.serving.cpus import cpu_threads, describe
from clipdemo.io.cifar import open_cifar100
from clipdemo.tasks.evaluate import Evaluation, evaluate
from clipdemo.fakes import cifar_checksums
from clipdemo.weights.load import load_model
from clipdemo.fakes import notebook_top5
from clipdemo.core.labels import CIFAR100_CLASSES, CIFAR_TEMPLATES, LabelSet
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import predict_image, predict_with
def in_process(q: bool, work: Path) -> dict[str, float]:
    r = {}
    loaded = load_model("random", device="cpu")
    model, pre = loaded.model, loaded.preprocess
    zs = ZeroShot(loaded)
    encoder, note = backends.select("auto", model, 224, work, loaded.info.identity)
    zs.use_encoder(encoder, note)
    print(f"image backend: {note}")
    upload = Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    single = LabelSet.preset()  # CIFAR-100 with the notebook's one prompt

    zs.text_features(single)  # warm: the app encodes the default labels at start-up
    r["R1"] = report("R1", "notebook recipe per prediction vs our warm prediction (100 labels, uploaded image)",
                     paired(lambda: notebook_top5(model, pre, upload, CIFAR100_CLASSES),
                            lambda: predict_image(zs, upload, single, 5), 3 if q else 7, 1, 5))

    hf = HFZeroShot(CIFAR100_CLASSES)
    r["R7"] = report("R7", "transformers CLIPModel as its zero-shot pipeline runs (every prompt re-encoded, padded "
                           "to the longest) vs our warm prediction (100 labels, uploaded image)",
                     paired(lambda: hf(upload), lambda: predict_image(zs, upload, single, 5),
                            5 if q else 15, 1, 3))

    fresh = iter(range(10**6))  # a new cache key each call: the relevancy is computed, never looked up
    r["R9"] = report("R9", "relevancy map (\"Why this label?\": a backward pass through each tower, fp32) vs a warm "
                           "prediction (100 labels, uploaded image): how many predictions one map costs",
                     paired(lambda: zs.inside.explain(upload, ("bench", next(fresh)), "lion", single),
                            lambda: predict_image(zs, upload, single, 5), 3 if q else 7, 1, 3))

    tokens = engine.tokenize(single.prompts())  # [100, 77]
    with torch.inference_mode():
        r["R2"] = report("R2", "encode_text, 100 CIFAR-100 prompts at 77 tokens vs short context",
                         paired(lambda: model.encode_text(tokens), lambda: engine.encode_text(model, tokens),
                                3 if q else 7, 1, 3))
        diff = (model.encode_text(tokens) - engine.encode_text(model, tokens)).abs().max().item()
        print(f"    same output: max abs difference {diff:.1e}")
        if not q:
            t18 = engine.tokenize(LabelSet.of(CIFAR100_CLASSES, CIFAR_TEMPLATES).prompts())  # [1800, 77]
            report("R2b", "encode_text, 1,800 prompts (18 templates) at 77 tokens vs short context",
                   paired(lambda: torch.cat([model.encode_text(c) for c in t18.split(256)]),
                          lambda: torch.cat([engine.encode_text(model, c) for c in t18.split(256)]), 1, 0, 3))
        else:
            print("R2b: 1,800-prompt set skipped in QUICK mode")

    x = pre(upload)[None]  # [1, 3, 224, 224]
    eager = backends.eager_encoder(model)
    r3 = paired(lambda: eager.encode(x), lambda: zs.encoder.encode(x), 20 if q else 60, 3)
    r["R3"] = report("R3", f"batch-1 image encoding, eager PyTorch vs {zs.encoder.name}", r3)
    print(f"    parity (normalised features): {backends.parity(zs.encoder, eager, x):.1e}")
    floor_report(r3.base, r3.ours, zs.encoder.name, q)

    _, md5, root = stand_ins(work)
    with cifar_checksums(md5):
        data = open_cifar100(root)
    zs.cifar_feature(15, data.image(15), len(data))
    r["R4"] = report("R4", "CIFAR index prediction without vs with stored features",
                     paired(lambda: predict_with(zs, zs.image_features([data.image(15)])[0], single, 5),
                            lambda: predict_with(zs, zs.cifar_feature(15, data.image(15), len(data)), single, 5),
                            10 if q else 30, 1, 10))

    n = 100 if q else 1000
    pixels = torch.stack([pre(data.image(i)) for i in range(n)])  # [n, 3, 224, 224] made beforehand

    def with_preprocessing():
        zs.cifar = None  # an empty store each time: every image is preprocessed and encoded
        evaluate(zs, data, Evaluation("first", n, templates="single"), batch_size=100)

    r5 = paired(lambda: [zs.encode_pixels(b) for b in pixels.split(100)], with_preprocessing, 1 if q else 2, 0)
    r["R5"] = r5.ratio
    print(f"R5: evaluation with preprocessing ({n} CIFAR images, batch 100, in-process) vs bare encoder on "
          f"pre-made tensors: {n / (min(r5.ours) / 1000):.1f} vs {n / (min(r5.base) / 1000):.1f} img/s (best runs) "
          f"-> {r5.ratio:.2f}")
    r.update(search.in_process(zs, data, q))
    r.update(multilingual.in_process(zs, upload, q))
    multilingual.first_use(work)
    r.update(yourdata.in_process(zs, data, upload, q))
    return r


def batch_ratio(client, work: Path, q: bool) -> float:
    """R8: 64 different uploads classified in one `classify_batch` call vs 64 `classify` calls (same labels)."""
    import base64

    urls = []
    for i in range(64):
        path = work / f"batch{i}.png"
        Image.effect_mandelbrot((96, 72), (-2 + i / 100, -1.2, 1, 1.2), 20 + i).convert("RGB").save(path)
        urls.append("data:image/png;base64," + base64.b64encode(path.read_bytes()).decode())
    labels = ["cat", "dog", "car", "tree", "house", "lion", "boat", "plane"]
    one_call = lambda: client.predict(urls, labels, "a photo of a {}", 3, api_name="/classify_batch")  # noqa: E731
    singles = lambda: [client.predict(u, labels, "a photo of a {}", 3, api_name="/classify") for u in urls]  # noqa: E731
    p = paired(singles, one_call, 3 if q else 5, 1)
    ratio = report("R8", "64 uploads: 64 classify calls vs one classify_batch call", p)
    print(f"    {64 / (statistics.median(p.base) / 1000):.1f} vs {64 / (statistics.median(p.ours) / 1000):.1f} "
          "images/s (medians)")
    return ratio


def served(q: bool, work: Path, backend: str = "auto") -> dict[str, float]:
    from gradio_client import Client, handle_file

    img = work / "upload.png"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(img)
    t0 = time.perf_counter()
    r = {}
    with served_app(work, backend) as (proc, url, page_s):
        client = Client(url, verbose=False, download_files=False)
        while True:
            try:
                client.predict(handle_file(str(img)), 5, api_name="/predict_image")
                break
            except Exception:  # noqa: BLE001 - "still loading" until the model is ready
                if time.perf_counter() - t0 > 180:
                    raise
                time.sleep(0.2)
        first_s = time.perf_counter() - t0
        print(f"start-up (CLIPDEMO_BACKEND={backend}, weights on disk as a 303 MB fp16 TorchScript file): page "
              f"served after {page_s:.1f} s, first prediction after {first_s:.1f} s")
        if backend == "auto":
            wait_ready(client)  # the background ONNX export would otherwise compete for the CPU
        client.predict(15, 5, api_name="/predict_index")  # stores index 15's feature
        ratio = report("R6", "gradio_client round trip, CIFAR index prediction vs no-op endpoint",
                       paired(lambda: client.predict(15, 5, api_name="/predict_index"),
                              lambda: client.predict(api_name="/ping"), 25 if q else 50, 10))
        if backend == "auto":
            r["R6"] = ratio
            r["R8"] = batch_ratio(client, work, q)
            cost_table(client, proc.pid, work)
        peak, now = rss_mb(proc.pid)
        print(f"memory of the served app (ViT-B/32 loaded, CLIPDEMO_BACKEND={backend}, after the runs above): "
              f"peak RSS {peak:,.0f} MB, steady RSS {now:,.0f} MB")
        status = client.predict(api_name="/status")[0]
        print(f"    app status: {status.split('image encoder:')[-1].split('·')[0].strip().replace(chr(92), '')}")
    return r


def main() -> int:
    warnings.filterwarnings("ignore")  # third-party deprecation noise would bury the figures
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (about two minutes)")
    q = ap.parse_args().quick
    torch.set_num_threads(cpu_threads())
    print(f"machine: {platform.processor() or platform.machine()}, {describe(cpu_threads())}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; {'QUICK' if q else 'full'} run")
    with tempfile.TemporaryDirectory(prefix="clipdemo-bench-") as tmp:
        work = Path(tmp)
        r = in_process(q, work)
        r.update(served(q, work))
        if not q:
            served(q, work, backend="eager")  # memory without the ONNX Runtime copy of the weights
        r.update(search.served(q, work))
    family.run(q)  # the CLIP family's ViT image towers on this CPU, into the cache (never the tracked tree)
    print("ratios: " + " ".join(f"R{i}={r[f'R{i}']:.2f}" for i in range(1, 17)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
