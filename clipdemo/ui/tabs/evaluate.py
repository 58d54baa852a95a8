"""The Evaluate tab: zero-shot accuracy on CIFAR-100, with progress, stop, charts, galleries and exports.

Holds `EvaluateTab`: `run`, a generator (so Stop takes effect between chunks of images) that encodes
the chosen test images into the shared feature store through the service, scores each template
setting, and yields `EvaluationView`s (a progress line first, then every result); and `build`. The
numbers come from `clipdemo.evaluate`, the pictures from `clipdemo.figures`, the files from
`clipdemo.exports`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ... import exports, figures
from ...data import TEST_SIZE
from ...evaluate import PUBLISHED, TEMPLATE_CHOICES, EvalResult, class_names, encode_split, evaluate, \
    select_indices, template_settings
from ...presets import CLASS_NAME_SPELLINGS, LABEL_PRESETS
from ...model import WeightsInfo
from ...runtime import Runtime
from ...scheduler import Priority
from ...service import BULK_IMAGES
from ..lang import L, t
from ..common import UI_API, KEEP, event, user_errors, wait_for_service

__all__ = ["EvaluateTab", "EvaluationView", "SUBSET_CHOICES", "TEMPLATE_TITLES", "CHUNK", "TIME_LIMIT_S"]

SUBSET_CHOICES = [("First N images", "first"), ("K per class (stratified, seeded)", "per-class"),
                  ("All 10,000", "all")]
TEMPLATE_TITLES = {"single": 'Single prompt "a photo of a {}"', "cifar18": "CLIP's 18 templates",
                   "both": "Both, side by side"}
CHUNK = 2 * BULK_IMAGES  # images encoded between two yields on CPU (2 * zs.bulk_images on a GPU path): Stop, a
# closed tab or a lost client ends the run here
TIME_LIMIT_S = 20 * 60  # a run stops here (all 10,000 images take ~9 min alone on 2 vCPUs); what it stored is kept


@dataclass(frozen=True)
class EvaluationView:
    """What the tab shows of an evaluation; while encoding, only `summary` changes (the rest is KEEP)."""

    summary: str
    chart: go.Figure | object = KEEP
    confusion: go.Figure | object = KEEP
    pairs: list | object = KEEP  # [(image, caption)] for a gallery
    worst: list | object = KEEP
    files: list[str] | object = KEEP


class EvaluateTab:
    """Runs evaluations for the Evaluate tab over the shared model service and feature store."""

    def __init__(self, runtime: Runtime, time_limit_s: float = TIME_LIMIT_S):
        self.rt = runtime
        self.time_limit_s = time_limit_s

    def run(self, subset: str, first_n: float, per_class: float, seed: float, templates: str, spelling: str,
            progress=gr.Progress()) -> Iterator[EvaluationView]:
        """Evaluate; yields a progress line while encoding, then every result."""
        with user_errors():
            data = self.rt.dataset()
            targets = list(data.dataset.targets)
            n = _whole(first_n if subset == "first" else per_class, "N" if subset == "first" else "K")
            indices = select_indices(targets, subset, n, int(seed))
            classes = class_names(spelling)
            settings = template_settings(templates)
        zs = wait_for_service(self.rt, progress)
        todo = zs.cifar_store(len(data)).missing(indices)
        start, done, step = time.perf_counter(), 0, 2 * zs.bulk_images
        for chunk_start in range(0, len(todo), step):
            chunk = todo[chunk_start:chunk_start + step]
            if time.perf_counter() - start > self.time_limit_s:
                yield EvaluationView(t("eval_stopped", f"{self.time_limit_s / 60:.0f}", done, len(todo)))
                return

            def report(k: int, _total: int, _what: str, base=done) -> None:
                rate = (base + k) / max(time.perf_counter() - start, 1e-9)
                left = (len(todo) - base - k) / rate
                progress((base + k) / len(todo), desc=t("eval_encoding", base + k, len(todo), f"{rate:.0f}", f"{left:.0f}"))

            # Bulk work: one model call per zs.bulk_images images, visitors' predictions go in between.
            done += encode_split(zs, data, chunk, batch_size=zs.bulk_images, workers=0, progress=report,
                                 priority=Priority.BULK)
            yield EvaluationView(t("eval_encoded", done, len(todo), f"{done / (time.perf_counter() - start):.0f}"))
        rate = done / (time.perf_counter() - start) if done else None
        progress(1.0, desc=t("eval_scoring"))
        results = evaluate(zs, data, indices, settings, classes=classes, workers=0)  # all stored: text side only
        results = [dataclasses.replace(r, images_per_s=rate or 0.0) for r in results]
        yield self._view(results, subset, len(indices), rate, zs.info, data)

    def _view(self, results: list[EvalResult], subset: str, n: int, rate: float | None, info: WeightsInfo,
              data) -> EvaluationView:
        best = results[-1]
        chart = figures.per_class_chart(best.classes, best.per_class,
                                        t("per_class_title", best.setting), t("per_class_axis"))
        confusion = figures.confusion_figure(best.classes, best.confusion,
                                             t("confusion_title", best.setting), (t("predicted"), t("true")))
        pairs = []
        for tr, p, count in best.confused_pairs(8):
            example = next(int(i) for i, tt, pp in zip(best.indices, best.targets, best.predicted)
                           if tt == tr and pp == p)
            pairs.append((figures.enlarge(data.image(example), 96),
                          f"{best.classes[tr]} → {best.classes[p]} ({count}×)"))
        worst = [(figures.enlarge(data.image(i), 96), f"#{i}: {best.classes[tr]} → {best.classes[p]} ({100 * q:.0f}%)")
                 for i, tr, p, q in best.worst_mistakes(12)]
        return EvaluationView(_summary(results, subset, n, rate, info), chart, confusion, pairs, worst,
                              exports.evaluation_files(results))

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events."""
        with gr.Tab(L("tab_evaluate"), id="evaluate"):
            gr.Markdown(L("eval_intro"))
            with gr.Row():
                subset = gr.Radio(SUBSET_CHOICES, value="first", label=L("eval_images"))
                first_n = gr.Number(1000, precision=0, minimum=1, maximum=TEST_SIZE, label=L("eval_n"))
                per_class = gr.Number(10, precision=0, minimum=1, maximum=100, label=L("eval_k"))
                seed = gr.Number(0, precision=0, label=L("eval_seed"))
            with gr.Row():
                templates = gr.Radio([(TEMPLATE_TITLES[k], k) for k in TEMPLATE_CHOICES], value="both",
                                     label=L("eval_templates"))
                spelling = gr.Dropdown([(LABEL_PRESETS[k].title, k) for k in CLASS_NAME_SPELLINGS],
                                       value=CLASS_NAME_SPELLINGS[0], label=L("eval_class_names"))
            with gr.Row():
                run_btn = gr.Button(L("eval_run"), variant="primary")
                stop_btn = gr.Button(L("eval_stop"), variant="stop")
            summary = gr.Markdown(elem_id="eval-summary")
            chart = gr.Plot(label=L("eval_chart"))
            confusion = gr.Plot(label=L("eval_confusion"))
            with gr.Row():
                pairs = gr.Gallery(label=L("eval_pairs"), columns=4, height=300)
                worst = gr.Gallery(label=L("eval_worst"), columns=4, height=300)
            files = gr.File(label=L("eval_files"), file_count="multiple",
                            interactive=False)

        running = run_btn.click(**event(self.run, [subset, first_n, per_class, seed, templates, spelling],
                                        dict(summary=summary, chart=chart, confusion=confusion, pairs=pairs,
                                             worst=worst, files=files)),
                                api_name="evaluate", api_visibility=UI_API, concurrency_id="evaluation", concurrency_limit=1)
        # One evaluation at a time across the Space: others wait in Gradio's queue, which shows their place.
        stop_btn.click(None, None, None, cancels=[running], api_visibility="private", queue=False)


def _whole(value: float | None, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a whole number.") from None


def _summary(results: list[EvalResult], subset: str, n: int, rate: float | None, info: WeightsInfo) -> str:
    rows = [t("eval_table_head"), "|---|---|---|---|---|---|"]
    for r in results:
        published = "; ".join(PUBLISHED.get(r.setting, ())) or "–"
        rows.append(f"| {r.setting} | {r.n:,} | {100 * r.top1:.2f}% | {100 * r.top5:.2f}% | "
                    f"{100 * r.mean_per_class:.2f}% | {published} |")  # our own text, not user input
    speed = t("eval_rate", f"{rate:.0f}") if rate else t("eval_stored")
    notes = [t("eval_reuse", speed)]
    if subset != "all":
        notes.append(t("eval_subset"))
    if info.trained and not info.verified:
        notes.insert(0, t("eval_unverified"))
    if not info.trained:
        notes.insert(0, t("eval_untrained"))
    return "\n".join(rows) + "\n\n" + "\n\n".join(notes)
