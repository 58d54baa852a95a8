"""The About tab: what CLIP and this Space are, the weights, the data, the published figures, the limits,
and, since CLIP ViT-B/32 learnt from English text, a way back to English labels.

Holds `build(labels_tab, labels_state)`; the text itself is `about_md` in `clipdemo/core/locales/`. The
English labels are put back by the Labels tab's own `pick_preset`, as picking both presets there would.
"""

from __future__ import annotations

import gradio as gr

from ...core.labels import DEFAULT_LABELS, DEFAULT_TEMPLATES, LabelSet
from ..lang import L

__all__ = ["build"]


def build(labels_tab, labels_state: gr.State) -> gr.Markdown:
    """Lay out the tab (inside the app's `gr.Tabs`); returns the self-check's place, which the status line
    fills on the real weights (empty otherwise)."""
    with gr.Tab(L("tab_about"), id="about"):
        checks = gr.Markdown("", elem_id="selfcheck")
        gr.Markdown(L("english_only"), elem_id="english-only")
        english = gr.Button(L("use_english"), elem_id="use-english")
        gr.Markdown(L("about_md"))

    def english_labels(label_set: LabelSet, request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Make the English CIFAR-100 labels and the single English template active."""
        picked = labels_tab.pick_preset(DEFAULT_LABELS, DEFAULT_TEMPLATES, "", "", label_set, request, progress)
        return {**picked, labels_tab.preset: DEFAULT_LABELS, labels_tab.tpl_preset: DEFAULT_TEMPLATES}

    english.click(english_labels, labels_state,
                  [labels_tab.label_box, labels_tab.tpl_box, labels_tab.preset, labels_tab.tpl_preset, labels_state,
                   labels_tab.summary], api_visibility="private")
    return checks
