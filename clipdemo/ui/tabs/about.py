"""The About tab: what CLIP and this Space are, the weights, the data, the published figures, the limits."""

import gradio as gr

from ...images import MAX_BYTES
from ...prompts import MAX_LABELS

__all__ = ["ABOUT", "build"]

ABOUT = f"""
## What this is
[CLIP](https://openai.com/research/clip) (Radford et al., 2021) learns images and text in one embedding
space. To classify an image *zero-shot*, each label is put into a prompt such as *"a photo of a lion"*,
both are encoded, and the probabilities are `softmax(100 · cos(image, prompt))`: no training on the labels.

This Space reproduces the classic CLIP notebook (ViT-B/32, CIFAR-100 test image 15 → *lion*) and lets you
bring your own images, labels and prompt templates, and look inside the model.

## Weights
The default model is OpenAI's **ViT-B/32**, as open_clip publishes it on the Hugging Face Hub (preloaded
when the Space is built, or fetched from OpenAI's hosts), checked against its pinned SHA-256. On these
weights and the real CIFAR-100 the Space checks itself after start-up against the notebook and a
1,000-image sample; the result appears at the top of this tab. The status line above says which weights are loaded. When it says
*untrained random weights*, the architecture is real but every prediction is meaningless.

## Data
CIFAR-100 test split: 10,000 32×32 images in 100 classes. Krizhevsky, A. (2009), *Learning Multiple Layers
of Features from Tiny Images*. Labels use torchvision's class names.

## Published zero-shot figures (ViT-B/32 on CIFAR-100)
| setting | top-1 | source |
|---|---|---|
| 18-template prompt ensemble | 65.1% | CLIP paper, Radford et al. 2021, Table 11 |
| clip_benchmark (LAION) | 64.5% top-1, 88.8% top-5 | LAION clip_benchmark results |
| single prompt "a photo of a {{}}" | ≈ 62% | reproductions in openai/CLIP issue #153 |

These are the published numbers, not measured by this Space.

## Limits
Up to {MAX_LABELS} labels per set; images up to {MAX_BYTES // 2**20} MB (JPEG, PNG, WebP, GIF, BMP).
Your label set is yours alone: other visitors never see it.
"""


def build() -> gr.Markdown:
    """Lay out the tab (inside the app's `gr.Tabs`); returns the self-check's place, which the status line
    fills on the real weights (empty otherwise)."""
    with gr.Tab("About", id="about"):
        checks = gr.Markdown("", elem_id="selfcheck")
        gr.Markdown(ABOUT)
    return checks
