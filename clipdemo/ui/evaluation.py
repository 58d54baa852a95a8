"""The Evaluate tab's handler: zero-shot accuracy on CIFAR-100, with progress, stop, charts and exports.

Holds: `Evaluation.run`, a generator (so Stop takes effect between chunks of images) that encodes the
chosen test images into the shared feature store, scores each template setting, and returns the
summary, charts, galleries of mistakes and CSV/JSON files. The numbers come from `clipdemo.evaluate`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
import uuid

import gradio as gr

from .. import figures, views
from ..data import DataError
from ..evaluate import PUBLISHED, EvalResult, encode_split, evaluate, select_indices
from ..presets import LABEL_PRESETS
from ..runtime import Runtime
from .handlers import Handlers

__all__ = ["Evaluation", "SUBSET_CHOICES", "TEMPLATE_CHOICES"]

SUBSET_CHOICES = [("First N images", "first"), ("K per class (stratified, seeded)", "per-class"),
                  ("All 10,000", "all")]
TEMPLATE_CHOICES = [('Single prompt "a photo of a {}"', "single"), ("CLIP's 18 templates", "cifar18"),
                    ("Both, side by side", "both")]
CHUNK = 256  # images encoded between two chances to stop


class Evaluation:
    """Runs evaluations for the Evaluate tab over the shared model and feature store."""

    def __init__(self, runtime: Runtime, handlers: Handlers):
        self.rt, self.h = runtime, handlers

    def run(self, subset: str, first_n: float, per_class: float, seed: float, templates: str, spelling: str,
            progress=gr.Progress()):
        """Evaluate; yields a progress line while encoding, then every result."""
        try:
            data = self.rt.dataset()
            targets = list(data.dataset.targets)
            n = int(first_n if subset == "first" else per_class)
            indices = select_indices(targets, subset, n, int(seed))
        except (DataError, ValueError, TypeError) as exc:
            raise gr.Error(str(exc)) from None
        if spelling not in ("cifar100", "cifar100-paper"):
            raise gr.Error("Class names must be 'cifar100' or 'cifar100-paper'.")
        settings = ("single", "cifar18") if templates == "both" else (templates,)
        if not set(settings) <= set(PUBLISHED):
            raise gr.Error("Templates must be 'single', 'cifar18' or 'both'.")
        zs = self.h.model_service(progress)
        todo = zs.cifar_store(len(data)).missing(indices)
        start, done = time.perf_counter(), 0
        for chunk_start in range(0, len(todo), CHUNK):
            chunk = todo[chunk_start:chunk_start + CHUNK]

            def report(k: int, _total: int, _what: str, base=done) -> None:
                rate = (base + k) / max(time.perf_counter() - start, 1e-9)
                left = (len(todo) - base - k) / rate
                progress((base + k) / len(todo), desc=f"encoding images: {base + k}/{len(todo)}, "
                                                      f"{rate:.0f} images/s, {left:.0f} s left")

            done += encode_split(zs, data, chunk, batch_size=64, workers=0, progress=report)
            yield (f"⏳ encoded {done} of {len(todo)} new images ({done / (time.perf_counter() - start):.0f} "
                   "images/s)…", *([gr.skip()] * 5))  # the summary only; the other 5 outputs stay
        rate = done / (time.perf_counter() - start) if done else None
        progress(1.0, desc="scoring…")
        results = evaluate(zs, data, indices, settings, classes=LABEL_PRESETS[spelling].labels, workers=0)
        results = [dataclasses.replace(r, images_per_s=rate or 0.0) for r in results]
        yield self._outputs(results, subset, len(indices), rate, zs.info.trained, data)

    def _outputs(self, results: list[EvalResult], subset: str, n: int, rate: float | None, trained: bool, data):
        best = results[-1]
        summary = _summary(results, subset, n, rate, trained)
        chart = figures.per_class_chart(best.classes, best.per_class,
                                        f"Per-class top-1 accuracy ({best.setting}), worst first")
        confusion = figures.confusion_figure(best.classes, best.confusion,
                                             f"Confusion matrix ({best.setting}): rows true, columns predicted")
        pairs = []
        for t, p, count in best.confused_pairs(8):
            example = next(int(i) for i, tt, pp in zip(best.indices, best.targets, best.predicted)
                           if tt == t and pp == p)
            pairs.append((views.enlarge(data.image(example), 96),
                          f"{best.classes[t]} → {best.classes[p]} ({count}×)"))
        worst = [(views.enlarge(data.image(i), 96), f"#{i}: {best.classes[t]} → {best.classes[p]} ({100 * q:.0f}%)")
                 for i, t, p, q in best.worst_mistakes(12)]
        return summary, chart, confusion, pairs, worst, _files(results)


def _summary(results: list[EvalResult], subset: str, n: int, rate: float | None, trained: bool) -> str:
    rows = ["| setting | images | top-1 | top-5 | mean per class | published (all 10,000 images) |",
            "|---|---|---|---|---|---|"]
    for r in results:
        published = "; ".join(PUBLISHED.get(r.setting, ())) or "–"
        rows.append(f"| {r.setting} | {r.n:,} | {100 * r.top1:.2f}% | {100 * r.top5:.2f}% | "
                    f"{100 * r.mean_per_class:.2f}% | {published} |")  # our own text, not user input
    speed = f"{rate:.0f} images/s encoded this run" if rate else "all image features were already stored"
    notes = [f"{speed}; changing labels or templates reuses them (only the text side is recomputed)."]
    if subset != "all":
        notes.append("The published figures are for the whole test split; a subset's numbers differ by chance.")
    if not trained:
        notes.insert(0, "⚠️ **Untrained random weights: accuracy is chance level** (about 1% top-1 and 5% top-5 "
                        "over 100 classes), because random image and text features carry no meaning. "
                        "Load the real ViT-B/32 weights to measure CLIP.")
    return "\n".join(rows) + "\n\n" + "\n\n".join(notes)


def _files(results: list[EvalResult]) -> list[str]:
    folder = views.results_dir()
    stem = folder / f"evaluation-{uuid.uuid4().hex[:12]}"
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["setting", "index", "true", "predicted", "probability"])
        for r in results:
            for i, t, p, q in zip(r.indices.tolist(), r.targets.tolist(), r.predicted.tolist(), r.confidence.tolist()):
                w.writerow([r.setting, i, r.classes[t], r.classes[p], f"{q:.6f}"])
    stem.with_suffix(".json").write_text(json.dumps([r.as_dict() for r in results], indent=1), encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]
