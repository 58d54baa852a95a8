"""Every picture the app shows: plotly charts and PIL images, built from plain values.

Pure functions; the values come from the service, the core and the tasks, and files are written by the UI
(`clipdemo.ui.files`). No gradio here.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image, ImageDraw

from ..core.inside import patch_grid
from ..core.zeroshot import Prediction

__all__ = ["plot_text", "treemap", "patch_figure", "attention_overlay", "similarity_figure", "colormap", "per_class_chart",
           "confusion_figure", "overlay_base", "with_colour_bar", "themed", "enlarge", "input_view", "bar_chart",
           "counts_chart", "contact_sheet", "reliability_figure", "cosine_histograms", "family_scatter", "CLIP_MEAN", "CLIP_STD"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # clip's Normalize(), to undo it for display
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# A perceptually ordered dark-to-bright ramp (inferno's anchor colours), for attention heat.
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 255, 164]], dtype=np.float32)


# Okabe & Ito's colour-blind-safe palette: blue for bars, orange for the true class.
BLUE, ORANGE, GREEN = "#0072B2", "#E69F00", "#009E73"  # Okabe-Ito: told apart with any colour vision


def themed(fig: go.Figure) -> go.Figure:
    """Transparent backgrounds, so a chart sits on the page's own colour in light and dark themes alike
    (the page's CSS colours its text and grid lines from the theme: see `clipdemo.ui.app.CSS`)."""
    fig.update_layout(paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def plot_text(text: str) -> str:
    """User text for plotly, which reads a few HTML tags (`<b>`, `<a href>`) in labels: entities instead."""
    return html.escape(text, quote=False)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in 0..1, any shape `[...]` -> RGB `[..., 3]` uint8 along the ramp."""
    x = np.clip(values, 0, 1) * (len(_RAMP) - 1)
    lo = np.floor(x).astype(int).clip(0, len(_RAMP) - 2)
    t = (x - lo)[..., None]
    return (_RAMP[lo] * (1 - t) + _RAMP[lo + 1] * t).round().astype(np.uint8)


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


def bar_chart(pred: Prediction, title: str = "Top predictions", axis: str = "probability (%)",
              shown: Callable[[str], str] = str) -> go.Figure:
    """Horizontal bars of the top-k probabilities, best on top, each with its cosine similarity; the true
    class, if shown, in orange. `shown`: how a label is written (a Turkish page adds the Turkish class name)."""
    labels = [lab for lab, _ in pred.top][::-1]
    probs = [100 * p for _, p in pred.top][::-1]
    cosines = [pred.cosine(lab) for lab in labels]
    colors = [ORANGE if lab == pred.true_label else BLUE for lab in labels]
    labels = [plot_text(shown(lab)) for lab in labels]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors, customdata=cosines,
                           text=[f"{p:.2f}% · cos {c:.3f}" for p, c in zip(probs, cosines)], textposition="outside",
                           cliponaxis=False, hovertemplate="%{y}: %{x:.2f}% · cos %{customdata:.3f}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=axis, xaxis_range=[0, 135],
                      height=120 + 28 * len(labels), margin=dict(l=10, r=10, t=50, b=40))
    fig.update_xaxes(tickvals=[0, 25, 50, 75, 100])
    fig.update_yaxes(type="category")  # labels are text, never parsed as numbers or dates
    return themed(fig)


def counts_chart(counts: list[tuple[str, int]], title: str, axis: str = "results") -> go.Figure:
    """Horizontal bars of how many results each label has (`[(label, count)]`, most first; shown most on top)."""
    labels = [plot_text(lab) for lab, _ in counts][::-1]
    values = [n for _, n in counts][::-1]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=BLUE, text=values, textposition="outside",
                           cliponaxis=False, hovertemplate="%{y}: %{x}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=axis, height=120 + 24 * len(labels), margin=dict(l=10, r=10, t=50, b=40))
    fig.update_yaxes(type="category")
    return themed(fig)


def contact_sheet(images: list[Image.Image], captions: list[str], columns: int = 6, cell: int = 128) -> Image.Image:
    """The images in a grid, each scaled to `cell` px (small ones without blur) over its caption (one line)."""
    rows = max(1, -(-len(images) // columns))
    pad, line = 6, 14
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + line + 2 * pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = pad + (i % columns) * (cell + pad), pad + (i // columns) * (cell + line + 2 * pad)
        if max(image.size) < cell:  # CIFAR's 32x32: whole-pixel steps, no blur
            k = cell // max(image.size)
            shown = image.resize((image.width * k, image.height * k), Image.Resampling.NEAREST)
        else:
            shown = image.copy()
            shown.thumbnail((cell, cell))
        sheet.paste(shown.convert("RGB"), (x + (cell - shown.width) // 2, y + (cell - shown.height) // 2))
        draw.text((x, y + cell + pad // 2), caption[:24], fill="black")
    return sheet


def treemap(tree: list[tuple[str, str, str, int]], title: str = "Parameters") -> go.Figure:
    """Plotly treemap of `architecture.parameter_tree` rows (id, label, parent, count)."""
    ids, labels, parents, values = zip(*tree)
    fig = go.Figure(go.Treemap(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total",
                               maxdepth=3, hovertemplate="%{id}<br>%{value:,} parameters<br>"
                                                         "%{percentRoot:.2%} of the model<extra></extra>",
                               texttemplate="%{label}<br>%{value:,}"))
    fig.update_layout(title=title, height=520, margin=dict(l=5, r=5, t=40, b=5))
    themed(fig)
    return fig


def patch_figure(image: Image.Image, patch: int, title: str | None = None) -> go.Figure:
    """The model input with the conv embedding's patch grid drawn over it; hover names each patch."""
    arr = np.asarray(image.convert("RGB"))  # [R, R, 3]
    res = arr.shape[0]
    g = res // patch
    fig = go.Figure(go.Image(z=arr, hoverinfo="skip"))
    for k in range(g + 1):
        fig.add_shape(type="line", x0=k * patch - 0.5, x1=k * patch - 0.5, y0=-0.5, y1=res - 0.5,
                      line=dict(color="white", width=1))
        fig.add_shape(type="line", y0=k * patch - 0.5, y1=k * patch - 0.5, x0=-0.5, x1=res - 0.5,
                      line=dict(color="white", width=1))
    grid = patch_grid(res, patch)  # (index, row, col, x0, y0), in token order
    fig.add_trace(go.Scatter(
        x=[x0 + patch / 2 for *_, x0, _ in grid], y=[y0 + patch / 2 for *_, y0 in grid], mode="text",
        text=[str(i) for i, *_ in grid], textfont=dict(color="white", size=11),
        customdata=[[i, r, c] for i, r, c, _, _ in grid],
        hovertemplate="patch %{customdata[0]} (row %{customdata[1]}, col %{customdata[2]})<br>"
                      "token %{customdata[0]}+1 after the class token<extra></extra>"))
    title = title or f"{g}×{g} patches of {patch}×{patch} px = {g * g} tokens + 1 class token"
    fig.update_layout(title=title,
                      height=420, margin=dict(l=5, r=5, t=40, b=5), showlegend=False)
    themed(fig)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    return fig


def overlay_base(shown: Image.Image, min_size: int = 224) -> Image.Image:
    """The model input (`input_view(..., min_size=0)`), enlarged smoothly to at least `min_size`: what the
    attention and relevancy overlays are drawn on."""
    size = max(min_size, shown.size[0])
    return shown.resize((size, size), Image.Resampling.BICUBIC)


def attention_overlay(image: Image.Image, amap: torch.Tensor, alpha: float = 0.6) -> Image.Image:
    """A `[grid, grid]` attention map, stretched to 0..1, upsampled and blended over the image."""
    img = np.asarray(image.convert("RGB"), dtype=np.float32)  # [R, R, 3]
    a = amap.float()
    a = (a - a.min()) / (a.max() - a.min() + 1e-12)
    up = torch.nn.functional.interpolate(a[None, None], size=img.shape[:2], mode="bilinear",
                                         align_corners=False)[0, 0]  # [R, R]
    heat = colormap(up.numpy()).astype(np.float32)  # [R, R, 3]
    blended = Image.fromarray((img * (1 - alpha) + heat * alpha).round().clip(0, 255).astype(np.uint8))
    return with_colour_bar(blended)


def with_colour_bar(image: Image.Image, width: int = 18, pad: int = 40) -> Image.Image:
    """`image` with the colour ramp beside it, 0 (lowest, bottom) to 1 (highest, top): the overlay's key. Around
    it the picture is transparent (it sits on the page's own colour, light or dark), its numbers on white."""
    h = image.size[1]
    ramp = colormap(np.linspace(1, 0, h)[:, None].repeat(width, 1))  # [h, width, 3]: high at the top
    out = Image.new("RGBA", (image.size[0] + 6 + width + pad, h), (0, 0, 0, 0))
    out.paste(image.convert("RGBA"), (0, 0))
    out.paste(Image.fromarray(ramp).convert("RGBA"), (image.size[0] + 6, 0))
    draw = ImageDraw.Draw(out)
    x = image.size[0] + 6 + width + 3
    for y, text in ((0, "1.0"), (h // 2 - 5, "0.5"), (h - 12, "0.0")):
        draw.rectangle((x - 1, y, x + 19, y + 11), fill=(255, 255, 255, 255))
        draw.text((x, y), text, fill=(0, 0, 0, 255))
    return out


def similarity_figure(labels: tuple[str, ...], sim: torch.Tensor,
                      title: str = "Cosine similarity of the labels' text features (before any image)") -> go.Figure:
    """Plotly heatmap of label-to-label cosine similarity `[L, L]`."""
    shown = [plot_text(lab) for lab in labels]
    fig = go.Figure(go.Heatmap(z=sim.numpy(), x=shown, y=shown, colorscale="Viridis",
                               hovertemplate="%{y} vs %{x}: cos %{z:.3f}<extra></extra>"))
    size = min(900, 260 + 9 * len(labels))
    fig.update_layout(title=title, height=size, margin=dict(l=5, r=5, t=40, b=5))
    themed(fig)
    fig.update_xaxes(type="category", showticklabels=len(labels) <= 40)
    fig.update_yaxes(type="category", autorange="reversed", showticklabels=len(labels) <= 40)
    return fig


def per_class_chart(classes: tuple[str, ...], accuracy: dict[str, list[float | None]], title: str,
                    axis: str = "top-1 accuracy (%)") -> go.Figure:
    """Per-class top-1 accuracy of each setting (`{setting: [C] accuracies}`), side by side, classes sorted from
    worst to best by the last setting; classes without images are left out."""
    last = list(accuracy.values())[-1]
    order = sorted((c for c, a in enumerate(last) if a is not None), key=lambda c: last[c])
    colours = [GREEN, ORANGE, BLUE][-len(accuracy):] if len(accuracy) <= 3 else [None] * len(accuracy)
    fig = go.Figure([go.Bar(x=[classes[c] for c in order], y=[100 * (values[c] or 0) for c in order], name=setting,
                            marker_color=colour,
                            hovertemplate=f"{html.escape(setting)} · %{{x}}: %{{y:.1f}}%<extra></extra>")
                     for (setting, values), colour in zip(accuracy.items(), colours)])
    fig.update_layout(title=title, yaxis_title=axis, yaxis_range=[0, 100], height=380, barmode="group",
                      showlegend=len(accuracy) > 1, margin=dict(l=5, r=5, t=40, b=5))
    themed(fig)
    fig.update_xaxes(type="category", showticklabels=len(order) <= 40)
    return fig


def confusion_figure(classes: tuple[str, ...], confusion: torch.Tensor, title: str,
                     axes: tuple[str, str] = ("predicted", "true")) -> go.Figure:
    """Heatmap of a `[C, C]` confusion matrix: rows are true classes, columns predicted ones."""
    fig = go.Figure(go.Heatmap(z=confusion.numpy(), x=list(classes), y=list(classes), colorscale="Cividis",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(title=title, height=700, margin=dict(l=5, r=5, t=40, b=5))
    fig.update_xaxes(type="category", title=axes[0], showticklabels=False)
    fig.update_yaxes(type="category", title=axes[1], autorange="reversed", showticklabels=False)
    themed(fig)
    return fig


def reliability_figure(bins, title: str, axes: tuple[str, str] = ("confidence", "accuracy"),
                       legend: tuple[str, str] = ("accuracy per bin", "perfect calibration")) -> go.Figure:
    """A reliability diagram: each confidence bin's accuracy (`core.calibration.Bin`s) against the diagonal a
    calibrated model would follow; a bar's hover says how many predictions it holds."""
    shown = [b for b in bins if b.count]
    fig = go.Figure([
        go.Bar(x=[(b.low + b.high) / 2 for b in shown], y=[b.accuracy for b in shown],
               width=[b.high - b.low for b in shown], marker_color=BLUE, name=legend[0], customdata=[b.count for b in shown],
               hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} images)<extra></extra>"),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color=ORANGE, dash="dash"), name=legend[1]),
    ])
    fig.update_layout(title=title, xaxis_title=axes[0], yaxis_title=axes[1], xaxis_range=[0, 1], yaxis_range=[0, 1],
                      height=360, margin=dict(l=5, r=5, t=40, b=5))
    return themed(fig)


def cosine_histograms(groups: dict[str, list[float]], threshold: float | None, title: str, axis: str = "best cosine",
                      marker: str = "threshold") -> go.Figure:
    """Overlaid histograms of best cosines by group (the labelled images vs the none-folder's, or right vs wrong
    answers), with the recommended threshold as a vertical line (when there is one)."""
    colours = [BLUE, ORANGE, GREEN]
    fig = go.Figure([go.Histogram(x=values, name=name, opacity=0.6, marker_color=colour, nbinsx=30)
                     for (name, values), colour in zip(groups.items(), colours)])
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color=GREEN, annotation_text=f"{marker} {threshold:.3f}")
    fig.update_layout(title=title, barmode="overlay", xaxis_title=axis, height=340, margin=dict(l=5, r=5, t=40, b=5))
    return themed(fig)


def family_scatter(points: list[tuple[str, float, float]], loaded: str, title: str,
                   axes: tuple[str, str] = ("parameters (millions)", "image GFLOPs")) -> go.Figure:
    """Parameters against image GFLOPs for each model (`[(name, Mparams, GFLOPs)]`), both axes logarithmic; the
    loaded model in orange."""
    fig = go.Figure(go.Scatter(
        x=[p for _, p, _ in points], y=[f for _, _, f in points], text=[plot_text(n) for n, _, _ in points],
        mode="markers+text", textposition="top center",
        marker=dict(size=12, color=[ORANGE if n == loaded else BLUE for n, _, _ in points]),
        hovertemplate="%{text}: %{x:.2f}M parameters, %{y:.2f} image GFLOPs<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=axes[0], yaxis_title=axes[1], height=420,
                      margin=dict(l=5, r=5, t=40, b=5))
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    return themed(fig)


def cost_bars(bars: list[tuple[str, float, bool]], loaded: str, title: str, axis: str,
              legend: tuple[str, str] = ("measured", "estimated")) -> go.Figure:
    """Milliseconds per image for each model (`[(name, ms, estimated)]`) on a log axis: measured bars solid (the
    loaded model's orange), estimates hatched and pale."""
    fig = go.Figure()
    for estimated, name in ((False, legend[0]), (True, legend[1])):
        chosen = [b for b in bars if b[2] == estimated]
        fig.add_bar(x=[plot_text(n) for n, _, _ in chosen], y=[ms for _, ms, _ in chosen], name=name,
                    text=[f"{'~' if estimated else ''}{ms:,.0f} ms" for _, ms, _ in chosen], textposition="outside",
                    marker=dict(color=[ORANGE if n == loaded and not estimated else BLUE for n, _, _ in chosen],
                                opacity=0.45 if estimated else 1.0, pattern_shape="/" if estimated else ""),
                    cliponaxis=False, hovertemplate="%{x}: %{text}<extra>" + name + "</extra>")
    fig.update_layout(title=title, yaxis_title=axis, height=380, margin=dict(l=5, r=5, t=70, b=5),
                      xaxis=dict(categoryorder="array", categoryarray=[plot_text(n) for n, _, _ in bars]))
    fig.update_yaxes(type="log")
    return themed(fig)
