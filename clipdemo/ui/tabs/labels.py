"""The Labels tab: the visitor's own label set and prompt templates, their similarity, and CLIP's tokens.

Holds `LabelsTab`: handlers as plain methods (`label_text`, `template_text`, `pick_preset`,
`check_labels`, `set_labels`, `label_summary`, `tokens`, `similarity`) with named results
(`LabelsApplied`, `PresetPicked`, `TokenView`), and `build`, which lays the tab out and wires it. The
active set lives in the visitor's `gr.State` (a `LabelState`), never on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ... import figures
from ...inside import label_similarity, prompt_tokens
from ...presets import LABEL_PRESETS, TEMPLATE_SETS, preset_key, template_set_key
from ...prompts import CONTEXT_LENGTH, PROMPT_BUDGET, PromptError, parse_editors
from ...runtime import Runtime
from ..common import UI_API, CUSTOM, KEEP, LabelState, ensure_text, event, md_text, user_errors, wait_for_service
from ..lang import L, t
from .labelsets import LabelSetsBox

__all__ = ["LabelsTab", "LabelsApplied", "PresetPicked", "TokenView", "state_for", "FIRST_PROMPT"]

PRESET_ID, TEMPLATE_SET_ID = "label-preset", "template-set"  # the two preset dropdowns, told apart in pick_preset
FIRST_PROMPT = "a photo of a lion"  # the token view's first prompt


@dataclass(frozen=True)
class LabelsApplied:
    """A label set made active for this visitor, and the summary line that says so."""

    state: LabelState
    summary: str


@dataclass(frozen=True)
class PresetPicked:
    """A preset picked: the editors' new text (KEEP for the one not picked), the two presets, and the label set
    it made active."""

    labels: str | object
    templates: str | object
    preset: str
    template_set: str
    state: LabelState
    summary: str


@dataclass(frozen=True)
class TokenView:
    """A prompt's BPE tokens as a table, and where its feature is read."""

    table: dict
    note: str


def state_for(labels: tuple[str, ...], templates: tuple[str, ...]) -> LabelState:
    """A visitor's label state for checked labels and templates, naming the presets they are (or Custom)."""
    return LabelState(tuple(labels), tuple(templates), preset_key(labels) or CUSTOM, template_set_key(templates) or CUSTOM)


class LabelsTab:
    """Label-set editing and the text-side views, over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def label_text(self, preset: str) -> str | object:
        """The editor text for a label preset (one label per line); KEEP for 'Custom'."""
        return "\n".join(LABEL_PRESETS[preset].labels) if preset in LABEL_PRESETS else KEEP

    def template_text(self, key: str) -> str | object:
        """The editor text for a template set (one template per line); KEEP for 'Custom'."""
        return "\n".join(TEMPLATE_SETS[key].templates) if key in TEMPLATE_SETS else KEEP

    def pick_preset(self, preset: str, template_set: str, label_text: str, template_text: str, state: LabelState,
                    progress=gr.Progress(), evt: gr.EventData = None) -> PresetPicked:
        """Fill the editor of the preset just picked (both without an event) and make the result active."""
        # Told apart by elem_id: Gradio 6.31 handed this handler another instance of the block (another _id).
        picked = getattr(getattr(evt, "target", None), "elem_id", None)
        labels = self.label_text(preset) if picked in (None, PRESET_ID) else KEEP
        templates = self.template_text(template_set) if picked in (None, TEMPLATE_SET_ID) else KEEP
        applied = self.set_labels(label_text if labels is KEEP else labels,
                                  template_text if templates is KEEP else templates, state, progress)
        return PresetPicked(labels, templates, preset, template_set, applied.state, applied.summary)

    def check_labels(self, label_text: str, template_text: str) -> str:
        """Inline validation of the editors' text, without touching the model."""
        try:
            labels, templates, cost = parse_editors(label_text, template_text)
        except PromptError as exc:
            return f"⚠️ {md_text(str(exc))}"
        note = t("dropped_note", len(labels.dropped_duplicates)) if labels.dropped_duplicates else ""
        return t("check_line", len(labels.labels), len(templates), len(labels.labels) * len(templates), note,
                 f"{cost:,}", f"{100 * cost / PROMPT_BUDGET:.0f}", f"{self.rt.text_seconds(cost):.0f}")

    def set_labels(self, label_text: str, template_text: str, state: LabelState,
                   progress=gr.Progress()) -> LabelsApplied:
        """Validate and activate a label set for this session; encodes its text features once."""
        with user_errors():
            labels, templates, _ = parse_editors(label_text, template_text)
        new = state_for(labels.labels, templates)
        ready = self.rt.ready
        if ready:
            ensure_text(self.rt.service(), new, progress)
        if labels.dropped_duplicates:
            gr.Warning(t("dropped_warning", len(labels.dropped_duplicates)))
        return LabelsApplied(new, self.label_summary(new, ready, labels.dropped_duplicates))

    def label_summary(self, state: LabelState, ready: bool | None = None, dropped: tuple[str, ...] = ()) -> str:
        """Markdown: how many labels and prompts are active, and whether their features are ready."""
        state = state or LabelState()
        if ready is None:
            ready = self.rt.ready and self.rt.service().has_text_features(state.labels, state.templates)
        n = len(state.labels) * len(state.templates)
        shown = ", ".join(md_text(lab) for lab in state.labels[:12]) + (" …" if len(state.labels) > 12 else "")
        feats = t("features_ready") if ready else t("features_later")
        drop = t("dropped_list", ", ".join(md_text(d) for d in dropped)) if dropped else ""
        return t("active_summary", len(state.labels), len(state.templates), n, feats, drop, shown)

    def tokens(self, prompt: str) -> TokenView:
        """The BPE tokens of a prompt as CLIP sees them, and where its text feature is read."""
        with user_errors():
            toks = prompt_tokens(prompt or "")
        rows = [[tok.position, tok.token_id, tok.text, tok.role + (t("token_read_here") if tok.role == "end" else "")]
                for tok in toks]
        pad = CONTEXT_LENGTH - len(toks)
        rows.append([f"{len(toks)}..{CONTEXT_LENGTH - 1}", 0, t("token_padding", pad), t("token_padding_role")])
        note = t("token_note", len(toks), CONTEXT_LENGTH, len(toks) - 1)
        return TokenView({"headers": [t("col_position"), t("col_token_id"), t("col_token"), t("col_role")],
                          "data": rows}, note)

    def similarity(self, state: LabelState, progress=gr.Progress()) -> go.Figure:
        """Cosine similarity between the session's labels' text features (plotly heatmap)."""
        state = state or LabelState()
        zs = wait_for_service(self.rt, progress)
        with user_errors():
            ensure_text(zs, state, progress)
            sim = label_similarity(zs.text_features(state.labels, state.templates))  # [L, L]
        return figures.similarity_figure(state.labels, sim,
                                         t("similarity_title") + ("" if zs.info.trained else t("untrained_suffix")))

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, store: gr.BrowserState) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events; `store` is the visitor's saved
        label sets, in their browser."""
        preset_choices = [(p.title, p.key) for p in LABEL_PRESETS.values()] + [("Custom", CUSTOM)]
        template_choices = [(ts.title, ts.key) for ts in TEMPLATE_SETS.values()] + [("Custom", CUSTOM)]
        with gr.Tab(L("tab_labels"), id="labels"):
            self.summary = summary = gr.Markdown(self.label_summary(LabelState(), ready=False), elem_id="label-summary")
            with gr.Row():
                with gr.Column(min_width=260):
                    self.preset = preset = gr.Dropdown(preset_choices, value="cifar100", label=L("label_preset"),
                                                       elem_id=PRESET_ID)
                    self.label_box = label_box = gr.Textbox(self.label_text("cifar100"), lines=12, max_lines=20,
                                                            label=L("labels_editor"), elem_id="label-editor")
                with gr.Column(min_width=260):
                    self.tpl_preset = tpl_preset = gr.Dropdown(template_choices, value="single", label=L("template_set"),
                                                               elem_id=TEMPLATE_SET_ID)
                    self.tpl_box = tpl_box = gr.Textbox(self.template_text("single"), lines=6, max_lines=20,
                                                        label=L("templates_editor"), elem_id="template-editor")
            check = gr.Markdown(elem_id="label-check")
            apply_btn = gr.Button(L("apply"), variant="primary", elem_id="apply-labels")
            self.sets = LabelSetsBox(self)
            self.sets.build(labels_state, store)
            with gr.Accordion(L("similarity_accordion"), open=False):
                sim_btn = gr.Button(L("similarity_button"))
                sim_plot = gr.Plot(label=L("similarity_plot"))
            with gr.Accordion(L("tokens_accordion"), open=False):
                first = self.tokens(FIRST_PROMPT)  # the tokenizer only: no model, shown at once (again on load,
                prompt_box = gr.Textbox(FIRST_PROMPT, label=L("prompt"))  # in the visitor's language)
                self.token_table = token_table = gr.Dataframe(first.table, label=L("tokens_table"), elem_id="token-table")
                self.token_note = token_note = gr.Markdown(first.note)

        apply_btn.click(**event(self.set_labels, [label_box, tpl_box, labels_state],
                                dict(state=labels_state, summary=summary)), api_name="set_labels", api_visibility=UI_API)
        # Picking either preset fills its editor and applies the result, in one private event.
        gr.on([preset.input, tpl_preset.input],
              **event(self.pick_preset, [preset, tpl_preset, label_box, tpl_box, labels_state],
                      dict(labels=label_box, templates=tpl_box, state=labels_state, summary=summary)),
              api_visibility="private")
        gr.on([label_box.change, tpl_box.change], self.check_labels, [label_box, tpl_box], check, queue=False,
              trigger_mode="always_last", api_visibility="private")
        sim_btn.click(self.similarity, labels_state, sim_plot, api_name="label_similarity", api_visibility=UI_API)
        prompt_box.change(**event(self.tokens, prompt_box, dict(table=token_table, note=token_note)),
              api_name="tokens", api_visibility=UI_API, queue=False, trigger_mode="always_last")
