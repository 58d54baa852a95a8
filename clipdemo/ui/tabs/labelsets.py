"""The Labels tab's saved sets: named label sets kept in the visitor's own browser, and label files.

Holds `LabelSetsBox` (handlers `save_set`, `load_set`, `delete_set`, `download_set`, `load_file`,
`remember_active`, plain methods tests call, with named results `SetsView` and `EditorsView`; and
`build`). The sets live in a `gr.BrowserState` (localStorage, encrypted with the settings' secret), never
on the server; `clipdemo.labelsets` checks what comes back from a browser. Loading a set or a file fills the
editors and applies them through the Labels tab, so the same validation and budget hold as for typing.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import exports, labelsets
from ...i18n import Refusal
from ..common import KEEP, LabelState, event, md_text
from ..lang import L, say, t

__all__ = ["LabelSetsBox", "SetsView", "EditorsView"]


@dataclass(frozen=True)
class SetsView:
    """The visitor's stored sets, the choice of names, and what just happened."""

    store: dict
    names: gr.Dropdown
    note: str


@dataclass(frozen=True)
class EditorsView:
    """A set or a file put into the editors and applied (or why not)."""

    labels: str | object
    templates: str | object
    state: LabelState | object
    summary: str | object
    note: str


class LabelSetsBox:
    """Saved label sets over the Labels tab (whose `set_labels` applies them)."""

    def __init__(self, labels_tab):
        self.tab = labels_tab

    def _sets(self, store: dict, note: str, chosen: str | None = None) -> SetsView:
        names = labelsets.names(store)
        return SetsView(store, gr.Dropdown(choices=names, value=chosen if chosen in names else None), note)

    def save_set(self, name: str, state: LabelState, store: dict | None) -> SetsView:
        """Save the active set under `name` in the visitor's browser."""
        state = state or LabelState()
        try:
            store = labelsets.save(store, name, state.labels, state.templates)
        except Refusal as exc:
            return self._sets(labelsets.clean(store), f"⚠️ {md_text(say(exc))}")
        name = labelsets.clean_name(name)
        return self._sets(store, t("sets_saved", md_text(name), len(state.labels)), name)

    def delete_set(self, name: str | None, store: dict | None) -> SetsView:
        """Delete the saved set `name`."""
        try:
            store = labelsets.delete(store, name)
        except Refusal as exc:
            return self._sets(labelsets.clean(store), f"⚠️ {md_text(say(exc))}")
        return self._sets(store, t("sets_deleted", md_text(name)))

    def _apply(self, label_text: str, template_text: str | object, state: LabelState, note: str,
               progress) -> EditorsView:
        templates = "\n".join(state.templates) if template_text is KEEP else template_text
        applied = self.tab.set_labels(label_text, templates, state, progress)  # gr.Error if the text is refused
        return EditorsView(label_text, template_text, applied.state, applied.summary, note)

    def load_set(self, name: str | None, store: dict | None, state: LabelState,
                 progress=gr.Progress()) -> EditorsView:
        """Put a saved set into the editors and make it active."""
        entry = labelsets.clean(store)["sets"].get(name)
        if entry is None:
            return EditorsView(KEEP, KEEP, KEEP, KEEP, f"⚠️ {md_text(say(Refusal('sets_unknown', name or '')))}")
        return self._apply("\n".join(entry["labels"]), "\n".join(entry["templates"]), state or LabelState(),
                           t("sets_loaded", md_text(name)), progress)

    def load_file(self, path: str | None, state: LabelState, progress=gr.Progress()) -> EditorsView:
        """Read a `.txt`/`.csv` of labels into the label editor and apply it (the current templates stay)."""
        if not path:
            return EditorsView(KEEP, KEEP, KEEP, KEEP, "")
        try:
            text = labelsets.label_file_text(path)
        except Refusal as exc:
            return EditorsView(KEEP, KEEP, KEEP, KEEP, f"⚠️ {md_text(say(exc))}")
        return self._apply(text, KEEP, state or LabelState(), t("sets_file_loaded"), progress)

    def download_set(self, state: LabelState) -> str:
        """The active labels as a `.txt` file (one per line), for the download button."""
        return exports.label_file(labelsets.as_txt((state or LabelState()).labels))

    def remember_active(self, state: LabelState, store: dict | None) -> dict:
        """The store with the visitor's active set in it (so it is back after a reload)."""
        state = state or LabelState()
        return labelsets.remember(store, state.labels, state.templates)

    def build(self, labels_state: gr.State, store: gr.BrowserState) -> None:
        """Lay out the box (inside the Labels tab) and wire its events."""
        tab = self.tab
        with gr.Accordion(L("sets_accordion"), open=False, elem_id="label-sets"):
            gr.Markdown(L("sets_intro"))
            with gr.Row():
                name = gr.Textbox(label=L("sets_name"), max_length=labelsets.MAX_NAME, elem_id="set-name", scale=3,
                                  min_width=160)
                save = gr.Button(L("sets_save"), scale=1, min_width=100, elem_id="set-save")
            with gr.Row():
                self.choice = choice = gr.Dropdown([], label=L("sets_saved_list"), elem_id="set-choice", scale=3,
                                                   min_width=160)
                load = gr.Button(L("sets_load"), scale=1, min_width=80, elem_id="set-load")
                delete = gr.Button(L("sets_delete"), scale=1, min_width=80, variant="stop", elem_id="set-delete")
            with gr.Row():
                upload = gr.File(label=L("sets_file"), file_types=list(labelsets.LABEL_FILE_TYPES), type="filepath",
                                 elem_id="set-file")
                # Its file is made whenever the active set changes (and on page load): a click downloads at once.
                self.download = download = gr.DownloadButton(L("sets_download"), elem_id="set-download")
            note = gr.Markdown(elem_id="set-note")

        sets_out = dict(store=store, names=choice, note=note)
        save.click(**event(self.save_set, [name, labels_state, store], sets_out), api_visibility="private")
        name.submit(**event(self.save_set, [name, labels_state, store], sets_out), api_visibility="private")
        delete.click(**event(self.delete_set, [choice, store], sets_out), api_visibility="private")
        editors = dict(labels=tab.label_box, templates=tab.tpl_box, state=labels_state, summary=tab.summary, note=note)
        load.click(**event(self.load_set, [choice, store, labels_state], editors), api_visibility="private")
        upload.upload(**event(self.load_file, [upload, labels_state], editors), api_visibility="private")
        labels_state.change(self.download_set, labels_state, download, api_visibility="private")
        # Whatever makes a set active (Apply, a preset, a saved set, a file, a link) is remembered in the browser.
        labels_state.change(self.remember_active, [labels_state, store], store, api_visibility="private")
