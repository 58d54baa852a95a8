"""The Batch sub-tab of Predict: many images (files, or a zip of images) against the visitor's labels.

Holds `BatchTab` (`classify_all`, a plain method tests call; `build`, its layout and wiring) and
`BatchView`. Reading and limits are `clipdemo.batch`; the images are encoded as bulk work, so other
visitors' predictions go in between; results come as a table, thumbnails and CSV/JSON downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import exports, figures
from ...batch import classify_batch, read_batch
from ...engine import MAX_TOP_K, check_top_k
from ...runtime import Runtime
from ..lang import L, t
from ..common import UI_API, LabelState, ensure_text, event, progress_fn, user_errors, wait_for_service

__all__ = ["BatchTab", "BatchView", "COLUMNS"]

COLUMNS = ["image", "top-1", "probability", "top-k"]


@dataclass(frozen=True)
class BatchView:
    """A batch's results: the summary, the table, thumbnails with their top-1, and the downloads."""

    summary: str
    table: list[list]
    gallery: list
    files: list[str]


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

    def classify_all(self, files: list | None, top_k: float, state: LabelState, progress=gr.Progress()) -> BatchView:
        """Classify every image of `files` (image files, or zips of images; at most 64 images)."""
        state = state or LabelState()
        paths = [f if isinstance(f, str) else f.get("path") for f in (files or [])]
        with user_errors():
            k = check_top_k(top_k)
            items = read_batch([p for p in paths if p], fit=self.rt.config().image_resolution)
        zs = wait_for_service(self.rt, progress)
        ensure_text(zs, state, progress)
        with user_errors():
            done = classify_batch(zs, items, state.labels, state.templates, k, progress=progress_fn(progress))
        table = [[it.name, it.top[0][0], round(it.top[0][1], 4), ", ".join(f"{lab} {100 * p:.1f}%" for lab, p, _ in it.top)]
                 for it in done]
        gallery = [(_thumb(it.image), f"{it.name}: {it.top[0][0]} {100 * it.top[0][1]:.1f}%") for it in done]
        note = "" if zs.info.trained else t("untrained_suffix")
        summary = t("batch_summary", len(done), len(state.labels), note)
        return BatchView(summary, table, gallery, exports.batch_files(done, len(state.labels)))

    def build(self, labels_state: gr.State) -> None:
        """Lay out the sub-tab (inside Predict's tabs) and wire its event."""
        with gr.Tab(L("tab_batch"), id="batch"):
            files = gr.File(label=L("batch_files"), file_count="multiple",
                            file_types=["image", ".zip"], elem_id="batch-files")
            with gr.Row():
                top_k = gr.Slider(1, MAX_TOP_K, value=3, step=1, label=L("batch_top_k"))
                run = gr.Button(L("batch_run"), variant="primary", elem_id="batch-run")
            summary = gr.Markdown(elem_id="batch-summary")
            table = gr.Dataframe(headers=COLUMNS, label=L("batch_table"), interactive=False, elem_id="batch-table")
            gallery = gr.Gallery(label=L("batch_gallery"), columns=8, height=260)
            downloads = gr.File(label=L("downloads"), file_count="multiple", interactive=False,
                                elem_id="batch-downloads")
        run.click(**event(self.classify_all, [files, top_k, labels_state],
                          dict(summary=summary, table=table, gallery=gallery, files=downloads)),
                  api_name="classify_batch_ui", api_visibility=UI_API,
                  concurrency_id="batch", concurrency_limit=1)  # one batch decodes at a time (memory)
