"""The Evaluate tab: zero-shot accuracy on CIFAR-100, with progress, stop, charts, galleries and exports.

It renders what `clipdemo.tasks.evaluate.run` yields; the numbers and the rate are the core's. Stop, a closed tab or
the time limit end a run between two steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from ...core import checks
from ...core.labels import CLIP, LABEL_PRESETS
from ...core.model import WeightsInfo
from ...core.multilingual import LoadedTower
from ...core.words import Progress
from ...io import figures
from ...io.cifar import Cifar100
from ...serving.runtime import Runtime
from ...tasks.evaluate import (PUBLISHED, SPELLINGS, SUBSETS, TEMPLATE_CHOICES, Evaluation, Report,
                               run)
from .. import files
from .yourdata import YourDataBox
from ..common import UI_API, md_message, saying, wait_for_service
from ..lang import lang_of, say

__all__ = ["EvaluateTab", "SUBSET_TITLES", "TEMPLATE_TITLES", "TIME_LIMIT_S"]

# The radios' names, by the tasks' keys (SUBSETS, TEMPLATE_CHOICES), translated in the browser
SUBSET_TITLES = {"first": "eval_subset_first", "per-class": "eval_subset_per_class", "all": "eval_subset_all"}
TEMPLATE_TITLES = {"single": "eval_tpl_single", "cifar18": "eval_tpl_cifar18", "both": "eval_tpl_both",
                   "languages": "eval_tpl_languages"}
TIME_LIMIT_S = 20 * 60  # a run stops here (all 10,000 images take ~9 min alone on 2 vCPUs); what it stored is kept


class EvaluateTab:
    """Runs evaluations for the Evaluate tab over the shared model service and feature store."""

    def __init__(self, runtime: Runtime, time_limit_s: float = TIME_LIMIT_S):
        self.rt = runtime
        self.time_limit_s = time_limit_s

    def run(self, subset: str, first_n: float, per_class: float, seed: float, templates: str, spelling: str,
            request: gr.Request = None, progress=gr.Progress()) -> Iterator[dict]:
        """Evaluate; yields a progress line while encoding, then every result."""
        lang = lang_of(request)
        with saying(lang):
            data = self.rt.dataset()
            ev = Evaluation(subset, first_n if subset == "first" else per_class, checks.whole(seed, "name_seed"),
                            templates, spelling)
            ev.indices(data.targets)  # every value checked before the model is waited for
        zs = wait_for_service(self.rt, progress, lang)
        with saying(lang):
            # Two bulk model calls between yields: Stop, a closed tab or a lost client ends the run there.
            for step in run(zs, data, ev, chunk=2 * zs.bulk_images, time_limit_s=self.time_limit_s):
                if isinstance(step, Progress):
                    progress(step.done / step.total, desc=step.what.say(lang))
                    yield {self.summary: "⏳ " + step.what.say(lang)}
                elif step.stopped is not None:
                    yield {self.summary: step.stopped.say(lang)}
                else:
                    progress(1.0, desc=say("eval_scoring", lang))
                    yield self._shown(step, ev, zs.loaded.info, data, lang, zs.tower_loaded)

    def _shown(self, report: Report, ev: Evaluation, info: WeightsInfo, data: Cifar100, lang: str,
               tower: LoadedTower | None = None) -> dict:
        best = report.results[-1]
        settings = " · ".join(r.setting for r in report.results) if len(report.results) > 1 else best.setting
        chart = figures.per_class_chart(report.results[0].classes, {r.setting: r.per_class for r in report.results},
                                        say("per_class_title", lang, settings),
                                        say("per_class_axis", lang))
        confusion = figures.confusion_figure(best.classes, best.confusion, say("confusion_title", lang, best.setting),
                                             (say("predicted", lang), say("true", lang)))
        pairs = []
        for tr, p, count in best.confused_pairs(8):
            example = next(int(i) for i, tt, pp in zip(best.indices, best.targets, best.predicted)
                           if tt == tr and pp == p)
            pairs.append((figures.enlarge(data.image(example), 96),
                          f"{best.classes[tr]} → {best.classes[p]} ({count}×)"))
        worst = [(figures.enlarge(data.image(i), 96), f"#{i}: {best.classes[tr]} → {best.classes[p]} ({100 * q:.0f}%)")
                 for i, tr, p, q in best.worst_mistakes(12)]
        return {self.summary: _summary(report, ev, info, lang, tower), self.chart: chart, self.confusion: confusion,
                self.pairs: pairs, self.worst: worst, self.files: files.evaluation_files(report.results),
                self.results: gr.Column(visible=True)}  # the panels appear once there are results

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, predict) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events: CIFAR-100, and the visitor's own labelled
        images (`yourdata.YourDataBox`; `predict` is the Predict tab, whose threshold and examples its report sets)."""
        with gr.Tab(say("tab_evaluate"), id="evaluate"), gr.Tabs():
            with gr.Tab(say("eval_source_cifar"), id="evaluate-cifar"):
                self._build_cifar()
            with gr.Tab(say("eval_source_yours"), id="evaluate-yours"):
                self.yours = YourDataBox(self.rt)
                self.yours.build(labels_state, predict)

    def _build_cifar(self) -> None:
        """The CIFAR-100 evaluation's layout and wiring (its result panels appear once there are results)."""
        gr.Markdown(say("eval_intro"))
        with gr.Row():
            subset = gr.Radio([(say(SUBSET_TITLES[k]), k) for k in SUBSETS], value="first", label=say("eval_images"))
            first_n = gr.Number(1000, precision=0, minimum=1, maximum=checks.TEST_SIZE, label=say("eval_n"))
            per_class = gr.Number(10, precision=0, minimum=1, maximum=100, label=say("eval_k"))
            seed = gr.Number(0, precision=0, label=say("eval_seed"))
        with gr.Row():
            templates = gr.Radio([(say(TEMPLATE_TITLES[k]), k) for k in TEMPLATE_CHOICES], value="both",
                                 label=say("eval_templates"))
            spelling = gr.Dropdown([(LABEL_PRESETS[k].title, k) for k in SPELLINGS],
                                   value=SPELLINGS[0], label=say("eval_class_names"))
        with gr.Row():
            run_btn = gr.Button(say("eval_run"), variant="primary")
            stop_btn = gr.Button(say("eval_stop"), variant="stop")
        self.summary = gr.Markdown(elem_id="eval-summary")
        with gr.Column(visible=False, elem_id="eval-results") as self.results:  # shown once there are results
            self.chart = gr.Plot(label=say("eval_chart"))
            self.confusion = gr.Plot(label=say("eval_confusion"))
            with gr.Row():
                self.pairs = gr.Gallery(label=say("eval_pairs"), columns=4, height=300)
                self.worst = gr.Gallery(label=say("eval_worst"), columns=4, height=300)
            self.files = gr.File(label=say("eval_files"), file_count="multiple", interactive=False)

        running = run_btn.click(self.run, [subset, first_n, per_class, seed, templates, spelling],
                                [self.summary, self.chart, self.confusion, self.pairs, self.worst, self.files,
                                 self.results],
                                api_name="evaluate", api_visibility=UI_API, concurrency_id="evaluation",
                                concurrency_limit=1)
        # One evaluation at a time across the Space: others wait in Gradio's queue, which shows their place.
        stop_btn.click(None, None, None, cancels=[running], api_visibility="private", queue=False)


def _summary(report: Report, ev: Evaluation, info: WeightsInfo, lang: str, tower: LoadedTower | None = None) -> str:
    rows = [say("eval_table_head", lang), "|---|---|---|---|---|---|"]
    for r in report.results:
        published = "; ".join(PUBLISHED.get(r.setting, ())) or "–"
        rows.append(f"| {r.setting} | {r.n:,} | {100 * r.top1:.2f}% | {100 * r.top5:.2f}% | "
                    f"{100 * r.mean_per_class:.2f}% | {published} |")  # our own text, not user input
    speed = say("eval_rate", lang, f"{report.rate:.0f}") if report.rate else say("eval_stored", lang)
    notes = [say("eval_reuse", lang, speed)]
    if ev.subset != "all":
        notes.append(say("eval_subset", lang))
    if info.trained and not info.verified:
        notes.insert(0, say("eval_unverified", lang))
    if not info.trained:
        notes.insert(0, say("eval_untrained", lang))
    if tower is not None and not tower.info.trained and any(s.encoder != CLIP for s in ev.settings):
        notes.insert(0, "⚠️ " + md_message(tower.label.say(lang)))  # the multilingual rows' tower is random
    return "\n".join(rows) + "\n\n" + "\n\n".join(notes)
