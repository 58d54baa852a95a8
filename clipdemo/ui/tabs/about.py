"""The About tab: what CLIP and this Space are, the weights, the data, the published figures, the limits,
and, since CLIP ViT-B/32 learnt from English text, a way back to English labels.

Holds `build(labels_tab, labels_state)` and `english_labels`; the text itself is `about_md` in
`clipdemo/locales/`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..common import LabelState, event
from ..lang import L

__all__ = ["build", "EnglishLabels"]


@dataclass(frozen=True)
class EnglishLabels:
    """The English CIFAR-100 preset put into the editors and made active."""

    labels: str
    templates: str
    preset: str
    template_set: str
    state: LabelState
    summary: str


def english_labels(labels_tab, state: LabelState, progress=gr.Progress()) -> EnglishLabels:
    """Make the English CIFAR-100 labels and the single English template active."""
    label_text, template_text = labels_tab.label_text("cifar100"), labels_tab.template_text("single")
    applied = labels_tab.set_labels(label_text, template_text, state, progress)
    return EnglishLabels(label_text, template_text, "cifar100", "single", applied.state, applied.summary)


def build(labels_tab, labels_state: gr.State) -> gr.Markdown:
    """Lay out the tab (inside the app's `gr.Tabs`); returns the self-check's place, which the status line
    fills on the real weights (empty otherwise)."""
    with gr.Tab(L("tab_about"), id="about"):
        checks = gr.Markdown("", elem_id="selfcheck")
        gr.Markdown(L("english_only"), elem_id="english-only")
        english = gr.Button(L("use_english"), elem_id="use-english")
        gr.Markdown(L("about_md"))

    def apply(state: LabelState, progress=gr.Progress()) -> EnglishLabels:
        return english_labels(labels_tab, state, progress)

    english.click(**event(apply, labels_state, dict(
        labels=labels_tab.label_box, templates=labels_tab.tpl_box, preset=labels_tab.preset,
        template_set=labels_tab.tpl_preset, state=labels_state, summary=labels_tab.summary)), api_visibility="private")
    return checks
