"""The About tab: what CLIP and this Space are, the weights, the data, the published figures, the limits,
and, since CLIP ViT-B/32's own text tower learnt from English, the label language: a way back to the English
labels, and one to the Turkish ones with the multilingual text tower.

The text itself is `about_md` in `clipdemo/core/locales/`. Either button is the Labels tab's own `pick_preset`.
"""

from __future__ import annotations

import gradio as gr

from ...core.labels import CLIP, DEFAULT_LABELS, DEFAULT_TEMPLATES, MULTILINGUAL, LabelSet
from ..lang import say

__all__ = ["build"]


TURKISH = ("cifar100-tr", "single-tr")  # the Turkish CIFAR-100 labels and the Turkish single prompt


def build(labels_tab, labels_state: gr.State) -> tuple[gr.Markdown, gr.Markdown]:
    """Lay out the tab (inside the app's `gr.Tabs`); returns the self-check's place, which the status line
    fills on the real weights (empty otherwise), and the text towers' place, which it fills always."""
    with gr.Tab(say("tab_about"), id="about"):
        gr.Markdown(say("about_md"), elem_id="about-md")  # what this is, first (#36); the label language after it
        checks = gr.Markdown("", elem_id="selfcheck")
        gr.Markdown(say("english_only"), elem_id="english-only")
        towers = gr.Markdown("", elem_id="text-towers")
        with gr.Row():
            english = gr.Button(say("use_english"), elem_id="use-english")
            turkish = gr.Button(say("use_turkish"), elem_id="use-turkish")

    def labels(preset: str, template_set: str, encoder: str):
        def pick(label_set: LabelSet, request: gr.Request = None, progress=gr.Progress()) -> dict:
            picked = labels_tab.pick_preset(preset, template_set, "", "", encoder, label_set, request, progress)
            return {**picked, labels_tab.preset: preset, labels_tab.tpl_preset: template_set,
                    labels_tab.encoder: encoder}
        return pick

    outputs = [labels_tab.label_box, labels_tab.tpl_box, labels_tab.preset, labels_tab.tpl_preset, labels_tab.encoder,
               labels_state, labels_tab.summary, labels_tab.hint_md]
    english.click(labels(DEFAULT_LABELS, DEFAULT_TEMPLATES, CLIP), labels_state, outputs, api_visibility="private")
    turkish.click(labels(*TURKISH, MULTILINGUAL), labels_state, outputs, api_visibility="private")
    return checks, towers
