"""CUDA check, prepared for a lent GPU: the app's GPU tasks (what ZeroGPU schedules) on CUDA, fp16 vs fp32.

Builds two services on the GPU: fp16 (as `clip.load` runs CUDA, and as the ZeroGPU path does, with its batch sizes)
and fp32, from the same full-size ViT-B/32 with seeded random weights (or CLIPDEMO_WEIGHTS). Every model call goes
through `clipdemo.serving.accel`'s tasks wrapped in `accel.Contract`, a stand-in for `spaces.GPU` that keeps
ZeroGPU's contract (arguments and results pickled, no CUDA tensor returned, each duration evaluated). Installs and
downloads nothing. Prints: feature cosine fp16 vs fp32 (image, text, the multilingual tower's text), top-1/top-5
agreement over the 100 CIFAR-100 labels, the notebook's code against the app's service on CUDA, which self-checks
(`clipdemo.tasks.selfcheck`) can run there and, when the real weights and data are present, their table; the
attention and torchinfo tasks, evaluation throughput over a synthetic CIFAR-100 test split (10,000 images, the real
on-disk format; accuracy is meaningless on random weights), the search index's build over it, and each task's
longest call against the duration it asked ZeroGPU for. Exits 2 without CUDA. Needs no gradio (run where only torch
and transformers are installed).

    .venv/bin/python -m bench.gpu_check [--images 512] [--eval 10000]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from clipdemo.tasks.classify import predict_image


def main() -> int:
    warnings.filterwarnings("ignore")  # third-party deprecation noise would bury the figures
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--eval", type=int, default=10_000, help="CIFAR-100 test images to evaluate (1..10000)")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to try the script itself (figures meaningless)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a lent GPU machine.", file=sys.stderr)
        return 2
    from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet
    from clipdemo.fakes import cifar_checksums, write_cifar100
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving import accel
    from clipdemo.serving.service import ZeroShot
    from clipdemo.serving.scheduler import Priority
    from clipdemo.tasks.evaluate import Evaluation, evaluate
    from clipdemo.weights.load import load_model

    timed: dict[str, list[tuple[float, int]]] = collections.defaultdict(list)  # task -> [(seconds, asked)]

    class Timed(accel.Contract):
        """ZeroGPU's contract, and each task's time beside the duration it would ask ZeroGPU for."""

        def __call__(self, task=None, *, duration=None, size=None):
            def wrap(fn):
                run = accel.Contract.__call__(self, duration=duration)(fn)

                def timing(*a, **k):
                    t = time.perf_counter()
                    out = run(*a, **k)
                    timed[self.calls[-1][0]].append((time.perf_counter() - t, self.calls[-1][1]))
                    return out
                return timing
            return wrap if task is None else wrap(task)

    tasks = accel.ModelCalls(gpu=Timed())
    weights = os.environ.get("CLIPDEMO_WEIGHTS", "random")
    fp16 = ZeroShot(load_model(weights, device=args.device), tasks=tasks, path=accel.PATHS["zerogpu"])
    loaded32 = load_model(weights, device=args.device)
    loaded32.model.float()
    fp32 = ZeroShot(loaded32, tasks=tasks, path=accel.PATHS["cuda"])
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (a trial of the script)"
    print(f"device: {gpu}; torch {torch.__version__}; Python {sys.version.split()[0]}")
    print(f"weights: {fp16.loaded.info.label}; dtypes {fp16.loaded.dtype} vs {fp32.loaded.dtype}; every model call "
          "through ZeroGPU's contract")

    pixels = torch.randn(args.images, 3, 224, 224, generator=torch.Generator().manual_seed(0))  # [N, 3, 224, 224]
    img16 = torch.cat([fp16.encode_pixels(pixels[i:i + 256]) for i in range(0, len(pixels), 256)])  # [N, 512]
    img32 = torch.cat([fp32.encode_pixels(pixels[i:i + 256]) for i in range(0, len(pixels), 256)])
    labels = LabelSet.preset()  # CIFAR-100, the notebook's one prompt
    txt16 = fp16.text_features(labels)  # [100, 512]
    txt32 = fp32.text_features(labels)
    cos_img, cos_txt = (img16 * img32).sum(-1), (txt16 * txt32).sum(-1)
    top16 = (100 * img16 @ txt16.T).topk(5).indices  # [N, 5]
    top32 = (100 * img32 @ txt32.T).topk(5).indices
    top1 = (top16[:, 0] == top32[:, 0]).float().mean().item()
    top5 = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top16, top32)) / (5 * len(top16))
    same5 = (top16 == top32).all(-1).float().mean().item()
    print(f"image feature cosine fp16 vs fp32: min {cos_img.min():.6f} (1 - cos at most {(1 - cos_img).max():.1e}), "
          f"{len(img16)} images")
    print(f"text feature cosine fp16 vs fp32:  min {cos_txt.min():.6f} (1 - cos at most {(1 - cos_txt).max():.1e}), "
          "100 prompts")
    print(f"top-1 agreement {100 * top1:.1f}%, top-5 set overlap {100 * top5:.1f}%, identical ranked top-5 "
          f"{100 * same5:.1f}%")

    from PIL import Image

    from clipdemo.tasks import selfcheck
    from clipdemo.fakes import notebook_top5
    from clipdemo.serving.settings import from_env
    picture = Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    _, row = notebook_top5(fp16.loaded.model, fp16.loaded.preprocess, picture, CIFAR100_CLASSES, device=args.device)
    served = predict_image(fp16, picture, labels)
    diff = max(abs(p - row[i].item()) for i, p in enumerate(served.probs))  # the same label order
    print(f"parity on {args.device} ({fp16.loaded.dtype}): the notebook's code vs the app's service, 100 labels: max probability "
          f"difference {diff:.1e}")
    root = from_env().data_root
    weights_why, data_why = selfcheck.not_real_weights(fp16.loaded.info), selfcheck.not_real_data(root)
    print(f"real-file checks (index 15, accuracies): {'can run' if not (weights_why or data_why) else 'cannot run here'}"
          f" - weights: {weights_why or 'the published ViT-B/32'}; data: {data_why or 'the real CIFAR-100'}")
    if not (weights_why or data_why):
        print(selfcheck.table(selfcheck.full_checks(fp16, open_cifar100(root), workers=8)))
    turkish = LabelSet.preset("cifar100-tr", "single-tr", encoder="multilingual")  # the multilingual tower's task
    ml16, ml32 = fp16.text_features(turkish), fp32.text_features(turkish)  # [100, D] each (random towers, same seed)
    ml_top16, ml_top32 = (100 * img16 @ ml16.T).argmax(-1), (100 * img32 @ ml32.T).argmax(-1)
    print(f"multilingual text feature cosine fp16 vs fp32: min {(ml16 * ml32).sum(-1).min():.6f}, 100 Turkish "
          f"prompts; top-1 agreement {100 * (ml_top16 == ml_top32).float().mean():.1f}% "
          f"({fp16.tower_loaded.model.dense.weight.dtype} tower on {fp16.tower_loaded.model.dense.weight.device})")
    trace = fp16.inside.vision_trace(picture, "mandelbrot")
    summary = fp16.inside.tower_summary("visual", 2)
    print(f"attention task: {tuple(trace.attentions.shape)} on {trace.attentions.device}; torchinfo task: "
          f"{summary.total_params:,} parameters in the vision tower")

    with tempfile.TemporaryDirectory() as tmp:
        md5 = write_cifar100(Path(tmp))
        with cifar_checksums(md5):
            data = open_cifar100(Path(tmp))
        indices = list(range(min(max(args.eval, 1), len(data))))
        for name, zs in (("fp16", fp16), ("fp32", fp32)):
            t = time.perf_counter()
            (result,) = evaluate(zs, data, Evaluation("first", len(indices), templates="single"), workers=4).results
            secs = time.perf_counter() - t
            print(f"evaluation {name}: {len(indices):,} images in {secs:.1f} s = {len(indices) / secs:,.0f} images/s "
                  f"end to end (decode, resize, {zs.bulk_images}-image GPU tasks, scoring); top-1 "
                  f"{100 * result.top1:.1f}% on synthetic images and random weights (meaningless)")
        zs = fp16  # the search index as the Space builds it after start-up: one background GPU task per chunk
        zs.cifar = None
        t, grants = time.perf_counter(), zs.gate_stats.grants[Priority.BACKGROUND]
        for done in zs.fill_store(data, list(range(len(data))), workers=4, priority=Priority.BACKGROUND):
            pass
        secs = time.perf_counter() - t
        print(f"search index fp16: {done:,} images in {secs:.1f} s = {done / secs:,.0f} images/s, "
              f"{zs.gate_stats.grants[Priority.BACKGROUND] - grants} GPU tasks of {zs.bulk_images} images")
    for name, rows in timed.items():
        worst = max(rows, key=lambda r: r[0] / r[1])
        print(f"task {name}: {len(rows)} calls, longest {max(s for s, _ in rows):.2f} s; worst use of its asked "
              f"duration {worst[0]:.2f} s of {worst[1]} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
