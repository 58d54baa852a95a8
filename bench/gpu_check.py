"""CUDA check, prepared for a lent GPU: the fp16 path (as `clip.load` runs it on CUDA) against fp32.

Runs a full-size ViT-B/32 with seeded random weights (or CLIPDEMO_WEIGHTS when given) on the GPU in
fp16 and in fp32 on the same inputs, and prints: feature cosine (image and text), top-5 agreement
over 100 CIFAR-100 labels, and batch-256 image throughput for both. Exits 2 without a CUDA device.

    .venv/bin/python -m bench.gpu_check [--images 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

from clipdemo import engine
from clipdemo.model import load_model
from clipdemo.presets import CIFAR100_CLASSES, SINGLE_TEMPLATE


def throughput(model, pixels: torch.Tensor, batch: int = 256, reps: int = 5) -> float:
    with torch.inference_mode():
        model.encode_image(pixels[:batch])
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            model.encode_image(pixels[:batch])
        torch.cuda.synchronize()
    return batch * reps / (time.perf_counter() - t)


def main() -> int:
    warnings.filterwarnings("ignore")  # third-party deprecation noise would bury the figures
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a lent GPU machine.", file=sys.stderr)
        return 2
    weights = os.environ.get("CLIPDEMO_WEIGHTS", "random")
    fp16 = load_model(weights, device="cuda")
    fp32 = load_model(weights, device="cuda")
    fp32.model.float()
    print(f"device: {torch.cuda.get_device_name()}; weights: {fp16.info.label}; dtypes {fp16.dtype} vs {fp32.dtype}")
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(max(args.images, 256), 3, 224, 224, generator=g).cuda()  # normalised-range inputs
    with torch.inference_mode():
        img16 = engine.image_features(fp16.model, pixels[: args.images])
        img32 = engine.image_features(fp32.model, pixels[: args.images])
    txt16 = engine.text_features(fp16.model, CIFAR100_CLASSES, SINGLE_TEMPLATE, device="cuda")
    txt32 = engine.text_features(fp32.model, CIFAR100_CLASSES, SINGLE_TEMPLATE, device="cuda")
    cos_img = (img16 * img32).sum(-1)  # [N]
    cos_txt = (txt16 * txt32).sum(-1)  # [100]
    top16 = engine.probabilities(img16, txt16).topk(5).indices  # [N, 5]
    top32 = engine.probabilities(img32, txt32).topk(5).indices
    top1_agree = (top16[:, 0] == top32[:, 0]).float().mean().item()
    top5_overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top16, top32)) / (5 * len(top16))
    print(f"image feature cosine fp16 vs fp32: min {cos_img.min():.5f}, mean {cos_img.mean():.5f}")
    print(f"text feature cosine fp16 vs fp32:  min {cos_txt.min():.5f}, mean {cos_txt.mean():.5f}")
    print(f"top-1 agreement {100 * top1_agree:.1f}%, top-5 overlap {100 * top5_overlap:.1f}% ({len(top16)} images)")
    t16, t32 = throughput(fp16.model, pixels), throughput(fp32.model, pixels)
    print(f"batch-256 image throughput: fp16 {t16:,.0f} img/s, fp32 {t32:,.0f} img/s ({t16 / t32:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
