"""The Labels tab: the visitor's own label set and prompt templates, their similarity, and CLIP's tokens.

The active set is a `LabelSet` in the visitor's `gr.State`, never on the server. The label language is the set's
text tower: CLIP's own (English) or the multilingual one, which a hint offers while the labels, the page or a preset
is not English.
"""

from __future__ import annotations

import gradio as gr

from ...core.inside import label_similarity, prompt_tokens
from ...core.labels import (CLIP, CONTEXT_LENGTH, LABEL_PRESETS, PROMPT_BUDGET, TEMPLATE_SETS, TEXT_ENCODERS, LabelSet,
                            suggests_multilingual)
from ...core.multilingual import MAX_TOKENS
from ...core.words import Refusal
from ...io import figures
from ...serving.runtime import Runtime
from ..common import CUSTOM, UI_API, ensure_text, md_message, md_text, saying, wait_for_service
from ..lang import lang_of, say
from .saved_sets import SavedSetsBox

__all__ = ["LabelsTab", "FIRST_PROMPT"]

PRESET_ID, TEMPLATE_SET_ID = "label-preset", "template-set"  # the two preset dropdowns, told apart in pick_preset
FIRST_PROMPT = "a photo of a lion"  # the token view's first prompt


class LabelsTab:
    """Label-set editing and the text-side views, over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def pick_preset(self, preset: str, template_set: str, label_text: str, template_text: str, encoder: str,
                    label_set: LabelSet, request: gr.Request = None, progress=gr.Progress(),
                    evt: gr.EventData = None) -> dict:
        """Fill the editor of the preset just picked (both without an event; 'Custom' leaves it) and make the
        result active."""
        # Told apart by elem_id: Gradio 6.31 handed this handler another instance of the block (another _id).
        picked = getattr(getattr(evt, "target", None), "elem_id", None)
        out = {}
        if picked in (None, PRESET_ID) and preset in LABEL_PRESETS:
            out[self.label_box] = label_text = "\n".join(LABEL_PRESETS[preset].items)
        if picked in (None, TEMPLATE_SET_ID) and template_set in TEMPLATE_SETS:
            out[self.tpl_box] = template_text = "\n".join(TEMPLATE_SETS[template_set].items)
        return {**out, **self.set_labels(label_text, template_text, encoder, label_set, request, progress)}

    def hint(self, label_text: str, template_text: str, encoder: str, lang: str, preset: str | None = None) -> str:
        """The one-line offer of the multilingual encoder (empty when it is active, or not called for)."""
        preset_language = next((p.language for p in (LABEL_PRESETS.get(preset or ""),) if p), None)
        wanted = suggests_multilingual(f"{label_text}\n{template_text}", lang, preset_language)
        return say("encoder_hint", lang) if encoder == CLIP and wanted else ""

    def check_labels(self, label_text: str, template_text: str, encoder: str = CLIP, preset: str | None = None,
                     request: gr.Request = None) -> dict:
        """Inline check of the editors' text, without touching the model, and the label-language hint."""
        lang = lang_of(request)
        hint = {self.hint_md: self.hint(label_text, template_text, encoder, lang, preset)}
        try:
            checked = LabelSet.from_text(label_text, template_text, encoder=encoder or CLIP)
        except Refusal as exc:
            return {self.check: f"⚠️ {md_text(exc.say(lang))}", **hint}
        note = say("dropped_note", lang, len(checked.dropped)) if checked.dropped else ""
        if checked.encoder != CLIP:  # its tokenizer comes with its files: it counts when it encodes
            return {self.check: say("check_line_tower", lang, len(checked.labels), len(checked.templates),
                                     checked.size, note, MAX_TOKENS), **hint}
        return {self.check: say("check_line", lang, len(checked.labels), len(checked.templates), checked.size, note,
                                 f"{checked.cost:,}", f"{100 * checked.cost / PROMPT_BUDGET:.0f}",
                                 f"{self.rt.text_seconds(checked.cost):.0f}"), **hint}

    def set_labels(self, label_text: str, template_text: str, encoder: str, label_set: LabelSet,
                   request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Check and activate a label set, in the chosen label language (text tower), for this session; encodes
        its text features once (gr.Error when refused: the visitor's previous set stays active and their text
        stays in the box)."""
        lang = lang_of(request)
        with saying(lang):
            new = LabelSet.from_text(label_text, template_text, encoder=encoder or CLIP)
        ready = self.rt.ready
        if ready:
            ensure_text(self.rt.service(), new, progress, lang)
        return {self.state: new, self.summary: self.label_summary(new, lang, ready),
                self.hint_md: self.hint(label_text, template_text, new.encoder, lang, new.label_preset)}

    def label_summary(self, label_set: LabelSet, lang: str, ready: bool | None = None) -> str:
        """Markdown: how many labels and prompts are active, and whether their features are ready."""
        if ready is None:
            ready = self.rt.ready and self.rt.service().has_text_features(label_set)
        shown = ", ".join(md_text(lab) for lab in label_set.labels[:12]) + (" …" if len(label_set.labels) > 12 else "")
        feats = say("features_ready" if ready else "features_later", lang)
        drop = say("dropped_list", lang, ", ".join(md_text(d) for d in label_set.dropped)) if label_set.dropped else ""
        encoder = say("summary_encoder", lang, say(f"encoder_{label_set.encoder}", lang))
        tower = self.rt.service().tower_loaded if label_set.encoder != CLIP and self.rt.ready else None
        if tower is not None and not tower.info.trained:  # random weights say so, as the image tower's do
            encoder += f" · ⚠️ {md_message(tower.label.say(lang))}"
        return say("active_summary", lang, len(label_set.labels), len(label_set.templates), label_set.size, feats,
                    drop, shown) + "\n\n" + encoder

    def tokens(self, prompt: str, request: gr.Request = None) -> dict:
        """The BPE tokens of a prompt as CLIP sees them, and where its text feature is read."""
        lang = lang_of(request)
        with saying(lang):
            toks = prompt_tokens(prompt or "")
        rows = [[tok.position, tok.token_id, tok.text,
                 tok.role + (say("token_read_here", lang) if tok.role == "end" else "")] for tok in toks]
        pad = CONTEXT_LENGTH - len(toks)
        rows.append([f"{len(toks)}..{CONTEXT_LENGTH - 1}", 0, say("token_padding", lang, pad),
                     say("token_padding_role", lang)])
        headers = [say(key, lang) for key in ("col_position", "col_token_id", "col_token", "col_role")]
        return {self.token_table: {"headers": headers, "data": rows},
                self.token_note: say("token_note", lang, len(toks), CONTEXT_LENGTH, len(toks) - 1)}

    def similarity(self, label_set: LabelSet, request: gr.Request = None, progress=gr.Progress()):
        """Cosine similarity between the session's labels' text features (plotly heatmap)."""
        lang = lang_of(request)
        zs = wait_for_service(self.rt, progress, lang)
        ensure_text(zs, label_set, progress, lang)
        sim = label_similarity(zs.text_features(label_set))  # [L, L]
        title = say("similarity_title", lang) + ("" if zs.loaded.info.trained else say("untrained_suffix", lang))
        return figures.similarity_figure(label_set.labels, sim, title)

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, store: gr.BrowserState) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events; `store` is the visitor's saved
        label sets, in their browser."""
        self.state = labels_state
        start = LabelSet.preset()
        preset_choices = [(p.title, p.key) for p in LABEL_PRESETS.values()] + [(say("custom_choice"), CUSTOM)]
        template_choices = [(p.title, p.key) for p in TEMPLATE_SETS.values()] + [(say("custom_choice"), CUSTOM)]
        with gr.Tab(say("tab_labels"), id="labels"):
            self.summary = gr.Markdown(self.label_summary(start, "en", ready=False), elem_id="label-summary")
            self.encoder = gr.Radio([(say(f"encoder_{e}"), e) for e in TEXT_ENCODERS], value=CLIP,
                                    label=say("label_language"), elem_id="label-language")
            self.hint_md = gr.Markdown(elem_id="encoder-hint")
            with gr.Row():
                with gr.Column(min_width=260):
                    self.preset = gr.Dropdown(preset_choices, value=start.label_preset, label=say("label_preset"),
                                              elem_id=PRESET_ID)
                    self.label_box = gr.Textbox(start.label_text(), lines=12, max_lines=20, label=say("labels_editor"),
                                                elem_id="label-editor")
                with gr.Column(min_width=260):
                    self.tpl_preset = gr.Dropdown(template_choices, value=start.template_set, label=say("template_set"),
                                                  elem_id=TEMPLATE_SET_ID)
                    self.tpl_box = gr.Textbox(start.template_text(), lines=6, max_lines=20,
                                              label=say("templates_editor"), elem_id="template-editor")
            self.check = gr.Markdown(elem_id="label-check")
            apply_btn = gr.Button(say("apply"), variant="primary", elem_id="apply-labels")
            self.sets = SavedSetsBox(self)
            self.sets.build(labels_state, store)
            with gr.Accordion(say("similarity_accordion"), open=False):
                sim_btn = gr.Button(say("similarity_button"))
                sim_plot = gr.Plot(label=say("similarity_plot"))
            with gr.Accordion(say("tokens_accordion"), open=False):
                prompt_box = gr.Textbox(FIRST_PROMPT, label=say("prompt"))
                # The tokenizer only (no model): shown at once, and again on load in the visitor's language.
                self.token_table = gr.Dataframe(label=say("tokens_table"), elem_id="token-table")
                self.token_note = gr.Markdown()

        applied = [labels_state, self.summary, self.hint_md]
        editors = [self.label_box, self.tpl_box, self.encoder]
        # Apply, and choosing the label language, activate the editors' set with the chosen text tower.
        gr.on([apply_btn.click, self.encoder.input], self.set_labels, [*editors, labels_state], applied,
              api_name="set_labels", api_visibility=UI_API)
        # Picking either preset fills its editor and applies the result, in one private event.
        gr.on([self.preset.input, self.tpl_preset.input], self.pick_preset,
              [self.preset, self.tpl_preset, *editors, labels_state],
              [self.label_box, self.tpl_box, *applied], api_visibility="private")
        gr.on([self.label_box.change, self.tpl_box.change], self.check_labels, [*editors, self.preset],
              [self.check, self.hint_md], queue=False, trigger_mode="always_last", api_visibility="private")
        sim_btn.click(self.similarity, labels_state, sim_plot, api_name="label_similarity", api_visibility=UI_API)
        prompt_box.change(self.tokens, prompt_box, [self.token_table, self.token_note], api_name="tokens",
                          api_visibility=UI_API, queue=False, trigger_mode="always_last")
