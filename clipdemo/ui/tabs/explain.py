"""The Predict tab's "Why this label?": label-conditioned relevancy for the last classified image.

The maps come from `ZeroShot.explain` (Chefer, Gur & Wolf, ICCV 2021: gradient-weighted attention, accumulated over
layers); the attention rollout is shown beside it for contrast. The image comes back through `PredictTab.image_for`.
"""

from __future__ import annotations

import gradio as gr

from ...core.inside import cls_attention_map, prompt_words
from ...core.labels import LabelSet, fill
from ...core.labels import CLIP
from ...core.zeroshot import LOGIT_SCALE
from ...io import figures
from ..common import UI_API, md_text, saying, wait_for_service
from ..lang import lang_of, say

__all__ = ["ExplainBox"]


class ExplainBox:
    """Relevancy maps over the Predict tab (whose `image_for` finds the last image again)."""

    def __init__(self, predict):
        self.predict, self.rt = predict, predict.rt

    def label_choices(self, result: dict[str, float] | None, label_set: LabelSet) -> dict:
        """The session's labels, the result's top-k first (`result`: gr.Label's {label: probability}), and its
        top-1 chosen."""
        top = sorted(result, key=result.get, reverse=True) if isinstance(result, dict) else []
        order = top + [lab for lab in label_set.labels if lab not in top]
        first = top[0] if top else (order[0] if order else None)
        return {self.label: gr.Dropdown(choices=order, value=first),
                self.versus: gr.Dropdown(choices=[("—", ""), *order], value="")}

    def explain(self, label: str | None, versus: str | None, last: dict | None, label_set: LabelSet,
                request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Why the last image matched `label`: its relevancy map (or where it exceeds `versus`'s), the attention
        rollout beside it, and the relevancy of its prompt's words."""
        lang = lang_of(request)
        if not label:
            raise gr.Error(say("explain_pick", lang))
        zs = wait_for_service(self.rt, progress, lang)
        image, what = self.predict.image_for(last, lang)
        key = tuple(sorted(last.items()))
        progress(0, desc=say("explain_working", lang))
        with saying(lang):
            ex = zs.inside.explain(image, key, label, label_set, versus)  # ex.image: [grid, grid]
            trace = zs.inside.vision_trace(image, key)
        big = figures.overlay_base(figures.input_view(zs.pixels(image), min_size=0))
        prompt = fill(label_set.templates[0], label)
        if label_set.encoder == CLIP:
            top = float(ex.words.max()) if ex.words.numel() and float(ex.words.max()) > 0 else 1.0
            shaded = [(w + " ", round(float(v) / top, 3)) for w, v in zip(prompt_words(prompt), ex.words.tolist())]
        else:  # the words are traced through CLIP's own text tower only: the prompt's words, unshaded
            shaded = [(w + " ", None) for w in prompt.split()]
        what_map = (say("explain_versus", lang, md_text(label), md_text(versus)) if versus and versus != label
                    else say("explain_for", lang, md_text(label)))
        note = "" if zs.loaded.info.trained else " " + say("explain_random", lang)
        if label_set.encoder != CLIP:  # the image side is shown: the gradient through the multilingual feature
            note += " " + say("explain_words_tower", lang)
        caption = say("explain_caption", lang, what_map, md_text(what), f"{ex.logit / LOGIT_SCALE:.3f}",
                       md_text(prompt)) + note
        return {self.relevancy: figures.attention_overlay(big, ex.image),
                self.rollout: figures.attention_overlay(big, cls_attention_map(trace)),
                self.words: shaded, self.caption: caption}

    def build(self, labels_state: gr.State) -> None:
        """Lay out the box (inside the Predict tab, below a result) and wire its events."""
        with gr.Accordion(say("explain_accordion"), open=False, elem_id="explain"):
            gr.Markdown(say("explain_intro"))
            with gr.Row():
                self.label = gr.Dropdown([], label=say("explain_label"), elem_id="explain-label", min_width=160,
                                         allow_custom_value=True)  # the API names any label; explain() checks it
                self.versus = gr.Dropdown([], label=say("explain_versus_label"), elem_id="explain-versus",
                                          min_width=160, allow_custom_value=True)
                run = gr.Button(say("explain_run"), variant="primary", elem_id="explain-run", min_width=120)
            with gr.Row():
                self.relevancy = gr.Image(label=say("explain_map"), type="pil", height=320, interactive=False,
                                          elem_id="explain-map")
                self.rollout = gr.Image(label=say("explain_rollout"), type="pil", height=320, interactive=False)
            self.words = gr.HighlightedText(label=say("explain_words"), elem_id="explain-words", show_legend=False,
                                            show_inline_category=False)
            self.caption = gr.Markdown(elem_id="explain-caption")
        result, last_input = self.predict.result, self.predict.last_input
        result.change(self.label_choices, [result, labels_state], [self.label, self.versus], api_visibility="private",
                      queue=False)
        run.click(self.explain, [self.label, self.versus, last_input, labels_state],
                  [self.relevancy, self.rollout, self.words, self.caption], api_name="relevancy", api_visibility=UI_API)
