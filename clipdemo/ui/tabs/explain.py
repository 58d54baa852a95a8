"""The Predict tab's "Why this label?": label-conditioned relevancy for the last classified image.

Holds `ExplainBox` (`label_choices`, which follows each new result, and `explain`, the handler tests and
the `/relevancy` endpoint call; named results `LabelChoices` and `ExplainView`) and `build`; the image comes
back through `PredictTab.image_for`. The maps
come from `ZeroShot.explain` (Chefer, Gur & Wolf, ICCV 2021: gradient-weighted attention, accumulated
over layers); the attention rollout is shown beside it for contrast, and the prompt's words are shaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from PIL import Image

from ... import figures
from ...engine import LOGIT_SCALE
from ...inside import cls_attention_map, prompt_words
from ...prompts import fill
from ..common import UI_API, LabelState, event, md_text, user_errors, wait_for_service
from ..lang import L, t

__all__ = ["ExplainBox", "ExplainView", "LabelChoices"]


@dataclass(frozen=True)
class LabelChoices:
    """The labels one may ask about, the top-k first; the top-1 chosen."""

    label: gr.Dropdown
    versus: gr.Dropdown


@dataclass(frozen=True)
class ExplainView:
    """The relevancy overlay, the rollout beside it, the prompt's words shaded, and what it all means."""

    relevancy: Image.Image
    rollout: Image.Image
    words: list[tuple[str, float]]
    caption: str


class ExplainBox:
    """Relevancy maps over the Predict tab (whose `image_for` finds the last image again)."""

    def __init__(self, predict):
        self.predict, self.rt = predict, predict.rt

    def label_choices(self, result: dict[str, float] | None, state: LabelState) -> LabelChoices:
        """The session's labels, the result's top-k first (`result`: gr.Label's {label: probability}), and its
        top-1 chosen."""
        state = state or LabelState()
        top = sorted(result, key=result.get, reverse=True) if isinstance(result, dict) else []
        order = top + [lab for lab in state.labels if lab not in top]
        first = top[0] if top else (order[0] if order else None)
        return LabelChoices(gr.Dropdown(choices=order, value=first), gr.Dropdown(choices=[("—", ""), *order], value=""))

    def explain(self, label: str | None, versus: str | None, last: dict | None, state: LabelState,
                progress=gr.Progress()) -> ExplainView:
        """Why the last image matched `label`: its relevancy map (or where it exceeds `versus`'s), the attention
        rollout beside it, and the relevancy of its prompt's words."""
        state = state or LabelState()
        if not label:
            raise gr.Error(t("explain_pick"))
        zs = wait_for_service(self.rt, progress)
        image, what = self.predict.image_for(last)
        key = tuple(sorted(last.items()))
        progress(0, desc=t("explain_working"))
        with user_errors():
            ex = zs.explain(image, key, label, state.labels, state.templates, versus)  # ex.image: [grid, grid]
            trace = zs.vision_trace(image, key)
        big = figures.overlay_base(figures.input_view(zs.pixels(image), min_size=0))
        prompt = fill(state.templates[0], label)
        words = prompt_words(prompt)
        top = float(ex.words.max()) if ex.words.numel() and float(ex.words.max()) > 0 else 1.0
        shaded = [(w + " ", round(float(v) / top, 3)) for w, v in zip(words, ex.words.tolist())]
        what_map = t("explain_versus", md_text(label), md_text(versus)) if versus and versus != label else \
            t("explain_for", md_text(label))
        note = "" if zs.info.trained else " " + t("explain_random")
        caption = t("explain_caption", what_map, md_text(what), f"{ex.logit / LOGIT_SCALE:.3f}", md_text(prompt)) + note
        return ExplainView(figures.attention_overlay(big, ex.image), figures.attention_overlay(big, cls_attention_map(trace)),
                           shaded, caption)

    def build(self, labels_state: gr.State, last_input: gr.State, result: gr.Label) -> None:
        """Lay out the box (inside the Predict tab, below a result) and wire its events."""
        with gr.Accordion(L("explain_accordion"), open=False, elem_id="explain"):
            gr.Markdown(L("explain_intro"))
            with gr.Row():
                label = gr.Dropdown([], label=L("explain_label"), elem_id="explain-label", min_width=160,
                                    allow_custom_value=True)  # the API names any label; explain() checks it
                versus = gr.Dropdown([], label=L("explain_versus_label"), elem_id="explain-versus", min_width=160,
                                     allow_custom_value=True)
                run = gr.Button(L("explain_run"), variant="primary", elem_id="explain-run", min_width=120)
            with gr.Row():
                relevancy = gr.Image(label=L("explain_map"), type="pil", height=320, interactive=False,
                                     elem_id="explain-map")
                rollout = gr.Image(label=L("explain_rollout"), type="pil", height=320, interactive=False)
            words = gr.HighlightedText(label=L("explain_words"), elem_id="explain-words", show_legend=False,
                                       show_inline_category=False)
            caption = gr.Markdown(elem_id="explain-caption")
        result.change(**event(self.label_choices, [result, labels_state], dict(label=label, versus=versus)),
                      api_visibility="private", queue=False)
        run.click(**event(self.explain, [label, versus, last_input, labels_state],
                          dict(relevancy=relevancy, rollout=rollout, words=words, caption=caption)),
                  api_name="relevancy", api_visibility=UI_API)
