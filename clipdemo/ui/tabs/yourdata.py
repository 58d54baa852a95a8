"""The Evaluate tab's "Your labelled images": a visitor's own labelled zip, measured (issue #26).

The zip is read into the session as features and thumbnails only, never the images. The reading, the checks and the
math are `clipdemo.tasks.yourdata`'s; the report's panels appear once there is a report.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from ...core.labels import LabelSet, PromptError
from ...io import figures
from ...serving.runtime import Runtime
from ...core import checks
from ...tasks.classify import MAX_EXAMPLES, Answering
from ...tasks.yourdata import WITHHELD, LabelledReport, LabelledSet, evaluate_labelled, read_labelled
from .. import files
from ..common import UI_API, md_text, progress_fn, saying, wait_for_service
from ..lang import lang_of, say
from .predict import examples_note

__all__ = ["YourDataBox"]


class YourDataBox:
    """A visitor's labelled images, inside the Evaluate tab; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def load(self, path: str | None, request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Read and encode a labelled zip into this session (its features and thumbnails only)."""
        lang = lang_of(request)
        cleared = {self.results: gr.Column(visible=False), self.recommended: None, self.held: None, self.fitted: None}
        if not path:  # a new set, or none: the last report goes (and what it could hand to Predict)
            return {self.data: None, self.classes: gr.Textbox(value="", visible=False), self.note: "", **cleared}
        zs = wait_for_service(self.rt, progress, lang)
        with saying(lang):
            data = read_labelled(zs, path, progress_fn(progress, lang))
        others = int((data.targets < 0).sum())
        return {self.data: data, self.classes: gr.Textbox(value="\n".join(data.classes), visible=True),
                self.note: say("labelled_loaded", lang, len(data.names), len(data.classes), others), **cleared}

    def run(self, data: LabelledSet | None, classes_text: str, examples: float, label_set: LabelSet,
            request: gr.Request = None, progress=gr.Progress()) -> dict:
        """The report on the session's labelled images, with the active label set's templates (and text tower)."""
        lang = lang_of(request)
        if data is None:
            raise gr.Error(say("labelled_first", lang))
        classes = tuple(line.strip() for line in (classes_text or "").splitlines() if line.strip())
        with saying(lang):
            examples = checks.count(examples or 0, 0, MAX_EXAMPLES, "name_examples")
            if len(classes) != len(data.classes):
                raise PromptError("labelled_edit_count", len(data.classes), len(classes))
            checked = LabelSet.of(classes, label_set.templates, duplicates="error", encoder=label_set.encoder)
            data = dataclasses.replace(data, classes=checked.labels)
            zs = wait_for_service(self.rt, progress, lang)
            progress(0, desc=say("labelled_measuring", lang))
            report = evaluate_labelled(zs, data, checked.templates, examples=examples,
                                       encoder=label_set.encoder, progress=progress_fn(progress, lang))
        return self._shown(report, data, lang)

    def _shown(self, report: LabelledReport, data: LabelledSet, lang: str) -> dict:
        per_class = figures.per_class_chart(report.classes, {a.setting: a.per_class for a in report.settings},
                                            say("per_class_title", lang, " · ".join(a.setting for a in
                                                                                      report.settings)),
                                            say("per_class_axis", lang))
        best = report.settings[1]
        confusion = figures.confusion_figure(report.classes, best.confusion, say("confusion_title", lang,
                                                                                      best.setting),
                                             (say("predicted", lang), say("true", lang)))
        reliability = figures.reliability_figure(report.bins, say("labelled_reliability", lang, f"{report.ece:.3f}"),
                                                 (say("labelled_confidence", lang), say("labelled_accuracy", lang)))
        if report.threshold_from == "none-folder":
            groups = {say("labelled_in_set", lang): report.best_cosine.tolist(),
                      say("labelled_none_set", lang): report.none_cosines.tolist()}
        else:
            right = best.predicted == best.targets
            groups = {say("labelled_right", lang): report.best_cosine[right].tolist(),
                      say("labelled_wrong", lang): report.best_cosine[~right].tolist()}
        hist = figures.cosine_histograms(groups, report.threshold.cosine if report.threshold else None,
                                         say("labelled_cosines", lang), say("labelled_best_cosine", lang),
                                         say("labelled_threshold_mark", lang))
        worst = [(figures.enlarge(data.thumbs[i], 96) if max(data.thumbs[i].size) < 96 else data.thumbs[i],
                  f"{data.names[i]}: {report.classes[t]} → {report.classes[p]} ({100 * q:.0f}%)")
                 for i, t, p, q in report.worst]
        return {self.summary: _summary(report, lang), self.per_class: per_class, self.confusion: confusion,
                self.reliability: reliability, self.cosines: hist, self.worst: worst,
                self.files: files.labelled_files(report, data.names),
                self.recommended: report.threshold.cosine if report.threshold else None,
                self.use: gr.Button(visible=report.threshold is not None),  # nothing to push when none is recommended
                self.held: report.example_features(data), self.use_held: gr.Button(visible=bool(report.examples)),
                self.fitted: report.temperature,
                self.results: gr.Column(visible=True)}  # the panels appear once there is a report

    def use_threshold(self, recommended: float | None) -> float | None:
        """Put the report's recommended threshold on the Predict tab (its change event keeps it for the session)."""
        return None if recommended is None else round(recommended, 3)

    def use_examples(self, held: dict | None, answering: Answering | None, request: gr.Request = None) -> dict:
        """Hand the report's held-out examples to Predict: its predictions become few-shot for those labels."""
        answering = answering or Answering()
        for label, feats in (held or {}).items():
            answering = answering.with_examples(label, feats)
        return {self.predict.answering: answering,
                self.predict.examples_note: examples_note(answering, lang_of(request))}

    def use_temperature(self, fitted: float | None, answering: Answering | None, request: gr.Request = None) -> dict:
        """Show Predict's scores with the temperature fitted on the visitor's images (softmax(100 cos / T))."""
        answering = (answering or Answering()).with_temperature(fitted or 1.0)
        return {self.predict.answering: answering,
                self.predict.examples_note: examples_note(answering, lang_of(request))}

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, predict) -> None:
        """Lay out the box (inside the Evaluate tab) and wire its events; `predict` is the Predict tab, whose threshold
        and few-shot examples the report can set."""
        self.predict = predict
        gr.Markdown(say("labelled_intro"))  # it states the limits (tests check them against the code's)
        with gr.Row():
            upload = gr.File(label=say("labelled_zip"), file_types=[".zip"], type="filepath", elem_id="labelled-zip")
            with gr.Column():
                self.classes = gr.Textbox(label=say("labelled_classes"), lines=6, max_lines=12, visible=False,
                                          elem_id="labelled-classes")
                examples = gr.Slider(0, 16, value=0, step=1, label=say("labelled_examples_label"),
                                     elem_id="labelled-examples")
                run = gr.Button(say("labelled_run"), variant="primary", elem_id="labelled-run")
        self.note = gr.Markdown(elem_id="labelled-note")
        self.data = gr.State(None)  # this session's LabelledSet: features and thumbnails, dropped with the session
        self.recommended = gr.State(None)
        self.held = gr.State(None)  # the report's held-out examples: label -> [n, D] features
        self.fitted = gr.State(None)  # the report's fitted temperature
        with gr.Column(visible=False, elem_id="labelled-results") as self.results:  # shown once there is a report
            self.summary = gr.Markdown(elem_id="labelled-summary")
            with gr.Row():
                self.use = gr.Button(say("labelled_use_threshold"), elem_id="labelled-use-threshold")
                self.use_held = gr.Button(say("labelled_use_examples"), elem_id="labelled-use-examples")
                use_temperature = gr.Button(say("labelled_use_temperature"), elem_id="labelled-use-temperature")
            with gr.Row():
                self.per_class = gr.Plot(label=say("eval_chart"))
                self.confusion = gr.Plot(label=say("eval_confusion"))
            with gr.Row():
                self.reliability = gr.Plot(label=say("labelled_reliability_plot"), elem_id="labelled-reliability")
                self.cosines = gr.Plot(label=say("labelled_cosines_plot"), elem_id="labelled-cosines")
            self.worst = gr.Gallery(label=say("eval_worst"), columns=6, height=260)
            self.files = gr.File(label=say("eval_files"), file_count="multiple", interactive=False)

        loaded = [self.data, self.classes, self.note, self.results, self.recommended, self.held, self.fitted]
        # Unpacking and encoding a set is heavy: one at a time, however many visitors upload at once.
        upload.upload(self.load, upload, loaded, api_visibility="private", concurrency_id="labelled",
                      concurrency_limit=1)
        upload.clear(self.load, upload, loaded, api_visibility="private", concurrency_id="labelled",
                     concurrency_limit=1)
        run.click(self.run, [self.data, self.classes, examples, labels_state],
                  [self.summary, self.per_class, self.confusion, self.reliability, self.cosines, self.worst, self.files,
                   self.recommended, self.use, self.held, self.use_held, self.fitted, self.results],
                  api_name="evaluate_labelled", api_visibility=UI_API,
                  concurrency_id="evaluation", concurrency_limit=1)
        self.use.click(self.use_threshold, self.recommended, predict.threshold, api_visibility="private", queue=False)
        self.use_held.click(self.use_examples, [self.held, predict.answering],
                            [predict.answering, predict.examples_note], api_visibility="private", queue=False)
        use_temperature.click(self.use_temperature, [self.fitted, predict.answering],
                              [predict.answering, predict.examples_note], api_visibility="private", queue=False)


def _summary(report: LabelledReport, lang: str) -> str:
    if report.top5_means_something:
        rows = [say("labelled_table_head", lang), "|---|---|---|"]
        rows += [f"| {md_text(a.setting)} | {100 * a.top1:.2f}% | {100 * a.top5:.2f}% |" for a in report.settings]
    else:  # with 5 classes or fewer, top-5 is 100% whatever the model
        rows = [say("labelled_table_head_top1", lang), "|---|---|"]
        rows += [f"| {md_text(a.setting)} | {100 * a.top1:.2f}% |" for a in report.settings]
    first = [] if report.trained else [say("labelled_untrained", lang)]  # random weights are named before any figure
    notes = []
    if report.examples:
        notes.append(say("labelled_few_shot", lang, report.examples, f"{100 * report.settings[1].top1:.2f}",
                          f"{100 * report.settings[-1].top1:.2f}", f"{report.tip[0]:g}", f"{report.tip[1]:g}"))
    notes.append(say("labelled_calibration", lang, f"{report.ece:.3f}", f"{report.temperature:.2f}",
                      f"{report.ece_before:.3f}", f"{report.ece_after:.3f}"))
    t = report.threshold
    if t is None:
        notes.append(say(WITHHELD[report.threshold_from], lang))
    else:
        notes.append(say("labelled_threshold_none" if report.threshold_from == "none-folder"
                          else "labelled_threshold_rw", lang, f"{t.cosine:.3f}", f"{100 * t.fits_kept:.1f}",
                          f"{100 * t.none_refused:.1f}", f"{100 * t.balanced_accuracy:.1f}"))
    return "\n\n".join([*first, "\n".join(rows), *notes])

