"""The Batch sub-tab of Predict: many images (files, or a zip of images) against the visitor's labels.

Reading and limits are `clipdemo.tasks.classify`'s; the images are encoded as bulk work, so other visitors'
predictions go in between.
"""

from __future__ import annotations

import gradio as gr

from ...core import checks
from ...core.labels import LabelSet
from ...io import figures
from ...serving.runtime import Runtime
from ...tasks.classify import PLAIN, Answering, classify_batch, read_batch
from .. import files
from ..common import UI_API, ensure_text, progress_fn, saying, wait_for_service
from ..lang import lang_of, say

__all__ = ["BatchTab", "COLUMNS"]

COLUMNS = ("batch_col_image", "batch_col_top1", "batch_col_prob", "batch_col_topk")  # the table's headers, by key


def _thumb(image):
    """A thumbnail at most 96 px wide or high (tiny images enlarged without blur, as CIFAR's are shown)."""
    if max(image.size) < 96:
        return figures.enlarge(image, 96)
    small = image.copy()
    small.thumbnail((96, 96))
    return small


class BatchTab:
    """Classifies a visitor's batch against their label set."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def classify_all(self, uploads: list | None, top_k: float, label_set: LabelSet, answering: Answering | None = None,
                     request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Classify every image of `uploads` (image files, or zips of images; at most 64 images), with the session's
        few-shot examples; under its "none of these" threshold, an image no label fits says so in the top-1 column."""
        lang = lang_of(request)
        paths = [f if isinstance(f, str) else f.get("path") for f in (uploads or [])]
        with saying(lang):
            k = checks.top_k(top_k)
            items = read_batch([p for p in paths if p], fit=self.rt.config().image_resolution)
        zs = wait_for_service(self.rt, progress, lang)
        ensure_text(zs, label_set, progress, lang)
        threshold = answering.threshold if answering else None
        with saying(lang):
            preds = classify_batch(zs, [image for _, image in items], label_set, k, progress=progress_fn(progress, lang),
                                   answering=answering or PLAIN)
        names = [name for name, _ in items]
        none = say("none_of_these", lang)
        table = [[name, p.top[0][0] if threshold is None or p.fits(threshold) else none, round(p.top[0][1], 4),
                  ", ".join(f"{lab} {100 * q:.1f}%" for lab, q in p.top)] for name, p in zip(names, preds)]
        gallery = [(_thumb(image), f"{name}: {p.top[0][0]} {100 * p.top[0][1]:.1f}%")
                   for (name, image), p in zip(items, preds)]
        note = "" if zs.loaded.info.trained else say("untrained_suffix", lang)
        return {self.summary: say("batch_summary", lang, len(preds), len(label_set.labels), note),
                self.table: {"headers": [say(c, lang) for c in COLUMNS], "data": table}, self.gallery: gallery,
                self.files: files.batch_files(names, preds, threshold)}

    def build(self, labels_state: gr.State, answering: gr.State) -> None:
        """Lay out the sub-tab (inside Predict's tabs) and wire its event; `answering` is the session's threshold and
        few-shot examples (Predict's)."""
        with gr.Tab(say("tab_batch"), id="batch"):
            uploads = gr.File(label=say("batch_files"), file_count="multiple", file_types=["image", ".zip"],
                              elem_id="batch-files")
            with gr.Row():
                top_k = gr.Slider(1, checks.MAX_TOP_K, value=3, step=1, label=say("batch_top_k"))
                run = gr.Button(say("batch_run"), variant="primary", elem_id="batch-run")
            self.summary = gr.Markdown(elem_id="batch-summary")
            self.table = gr.Dataframe(headers=[say(c, "en") for c in COLUMNS], label=say("batch_table"), interactive=False,
                                       elem_id="batch-table")
            self.gallery = gr.Gallery(label=say("batch_gallery"), columns=8, height=260)
            self.files = gr.File(label=say("downloads"), file_count="multiple", interactive=False,
                                 elem_id="batch-downloads")
            gr.Markdown(say("batch_bulk_hint"), elem_id="batch-bulk-hint")
        run.click(self.classify_all, [uploads, top_k, labels_state, answering],
                  [self.summary, self.table, self.gallery, self.files],
                  api_name="classify_batch_ui", api_visibility=UI_API,
                  concurrency_id="batch", concurrency_limit=1)  # one batch at a time: it is bulk work
