"""Pictures and downloads built from results: plotly charts, image views, CSV/JSON files, short texts.

Holds pure functions from plain values (predictions, tensors, PIL images) to figures, images, files
and Markdown. No gradio here; the UI module only places what these return.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
import uuid
from pathlib import Path

import plotly.graph_objects as go
import torch
from PIL import Image

from .figures import plot_text
from .service import Prediction

__all__ = ["enlarge", "input_view", "bar_chart", "result_files", "truth_markdown", "md_text", "CLIP_MEAN", "CLIP_STD"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # clip's Normalize(), to undo it for display
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESULTS_DIR_NAME = "clipdemo-results"
RESULTS_MAX_AGE_S = 3600


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&")


def md_text(text: str) -> str:
    """Text shown literally inside Markdown: every Markdown/HTML-significant character backslash-escaped.

    `<img onerror=...>` then renders as those characters, never as a tag (and never as `&lt;`).
    """
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def enlarge(image: Image.Image, size: int = 224) -> Image.Image:
    """Scale a small image up with nearest-neighbour (crisp pixels, no blur)."""
    return image.resize((size, size), Image.Resampling.NEAREST)


def input_view(pixels: torch.Tensor, min_size: int = 224) -> Image.Image:
    """What the model sees: a preprocessed `[3, R, R]` tensor, un-normalised back to an RGB image.

    Inputs smaller than `min_size` (tiny test models) are enlarged with nearest-neighbour for display.
    """
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    rgb = (pixels.float().cpu() * std + mean).clamp(0, 1)  # [3, R, R] in 0..1
    image = Image.fromarray((rgb.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())  # [R, R, 3]
    return enlarge(image, min_size) if image.size[0] < min_size else image


def bar_chart(pred: Prediction, title: str = "Top predictions") -> go.Figure:
    """Horizontal bars of the top-k probabilities, best on top; the true class, if shown, in green."""
    labels = [lab for lab, _ in pred.top][::-1]
    probs = [100 * p for _, p in pred.top][::-1]
    colors = ["#2ca02c" if lab == pred.true_label else "#4c78a8" for lab in labels]
    labels = [plot_text(lab) for lab in labels]
    if not pred.weights.trained:
        title += " (untrained random weights: meaningless)"
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors,
                           text=[f"{p:.2f}%" for p in probs], textposition="auto",
                           hovertemplate="%{y}: %{x:.2f}%<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="probability (%)", xaxis_range=[0, 100],
                      height=120 + 28 * len(labels), margin=dict(l=10, r=10, t=50, b=40))
    fig.update_yaxes(type="category")  # labels are text, never parsed as numbers or dates
    return fig


def _cell(text: str) -> str:
    """Defuse spreadsheet formulas in exported text cells."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def results_dir() -> Path:
    """The folder for files offered as downloads; files older than an hour are removed on each call."""
    folder = Path(tempfile.gettempdir()) / RESULTS_DIR_NAME
    folder.mkdir(exist_ok=True)
    cutoff = time.time() - RESULTS_MAX_AGE_S
    for old in folder.iterdir():  # bounded: files older than an hour are removed
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)
    return folder


def result_files(pred: Prediction, what: str) -> list[str]:
    """Write the prediction as CSV and JSON; returns the two paths."""
    stem = results_dir() / f"prediction-{uuid.uuid4().hex[:12]}"
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "label", "probability"])
        for rank, (lab, p) in enumerate(pred.top, start=1):
            w.writerow([rank, _cell(lab), f"{p:.6f}"])
    json_path.write_text(json.dumps({**pred.as_dict(), "image": what}, indent=2, ensure_ascii=False), encoding="utf-8")
    return [str(csv_path), str(json_path)]


def truth_markdown(pred: Prediction) -> str:
    """True class, whether top-1 is right, and the true class's rank and probability."""
    if pred.true_label is None:
        return ""
    true = md_text(pred.true_label)
    if pred.true_rank is None:
        return f"True class: **{true}** (not in the current label set)"
    verdict = "✅ top-1 is right" if pred.true_rank == 1 else "❌ top-1 is wrong"
    return (f"True class: **{true}** · {verdict} · rank {pred.true_rank} of {len(pred.labels)}, "
            f"{100 * pred.true_prob:.2f}%")
