"""What the numbers are measured against: this machine's fp32 matmul floor, and the peer a user would
pick instead (Hugging Face `transformers`' CLIPModel doing what its zero-shot pipeline does per call).

Both are bench-only (`requirements-bench.txt`); nothing here downloads: the peer is a random init from
`CLIPConfig()` (its defaults are ViT-B/32's shapes) with a tokenizer built from openai-clip's own BPE
tables, which give the same token ids.
"""

from __future__ import annotations

import statistics

import torch

from bench.timing import once_ms

VIT_B32_GFLOP_PER_IMAGE = 8.82  # 4.41 G multiply-adds for one 224x224 image through the ViT-B/32 image tower


def matmul_gflops(m: int, k: int = 768, n: int = 3072, reps: int = 20) -> list[float]:
    """GFLOP/s of fp32 `[m, k] @ [k, n]` on this machine (the image tower's MLP shape; m = its tokens)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b  # warm
    return [2 * m * k * n / (once_ms(lambda: a @ b) / 1000) / 1e9 for _ in range(reps)]


def floor_report(eager_ms: list[float], ours_ms: list[float], ours_name: str, quick: bool) -> None:
    """This machine's matmul GFLOP/s, and the image tower's achieved GFLOP/s as a fraction of it."""
    reps = 10 if quick else 30
    small, large = matmul_gflops(50, reps=reps), matmul_gflops(50 * 64, reps=reps)
    print("CPU floor: fp32 matmul [m,768]@[768,3072], threads "
          f"{torch.get_num_threads()}: m=50 (one image's tokens) {statistics.median(small):.0f} GFLOP/s "
          f"(min {min(small):.0f}, max {max(small):.0f}); m=3200 (64 images) {statistics.median(large):.0f} "
          f"GFLOP/s (min {min(large):.0f}, max {max(large):.0f})")
    for name, ms in (("eager", eager_ms), (ours_name, ours_ms)):
        achieved = VIT_B32_GFLOP_PER_IMAGE / (statistics.median(ms) / 1000)
        print(f"    image tower, batch 1, {name}: {achieved:.0f} GFLOP/s = {achieved / statistics.median(small):.0%} "
              f"of the m=50 matmul, {achieved / statistics.median(large):.0%} of the m=3200 matmul")


class HFZeroShot:
    """transformers' CLIPModel run the way its zero-shot-image-classification pipeline runs per call:
    every label prompt tokenised and encoded again (padded to the longest), plus the image."""

    def __init__(self, labels: tuple[str, ...], template: str = "a photo of a {}", seed: int = 0):
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

        from clipdemo.core.clip_package import import_clip
        bpe = import_clip().simple_tokenizer.SimpleTokenizer()
        merges = [pair for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])]
        self.tokenizer = CLIPTokenizer(vocab=dict(bpe.encoder), merges=merges)
        self.processor = CLIPImageProcessor()  # defaults: OpenAI's resize, crop and normalisation
        torch.manual_seed(seed)
        self.model = CLIPModel(CLIPConfig()).eval()
        self.prompts = [template.replace("{}", label) for label in labels]

    @torch.inference_mode()
    def __call__(self, image) -> torch.Tensor:
        text = self.tokenizer(self.prompts, padding=True, return_tensors="pt")
        pixels = self.processor(images=image, return_tensors="pt")
        out = self.model(input_ids=text["input_ids"], attention_mask=text["attention_mask"],
                         pixel_values=pixels["pixel_values"])
        return out.logits_per_image.softmax(dim=-1)[0]  # [L]
