"""A visitor's saved label sets: named `LabelSet`s kept in their own browser, never on the server, and files.

The store is a `gr.BrowserState` (localStorage, encrypted with the settings' secret); what comes back from a browser
is untrusted, so malformed entries are dropped. Loading a set or a file applies it through the Labels tab, so the
same checks and budget hold as for typing.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ...core.labels import CLIP, LabelSet, read_label_file
from ...core.words import Refusal
from .. import files
from ..common import md_text
from ..lang import lang_of, say

__all__ = ["SavedSetsBox", "MAX_SETS", "MAX_NAME", "LABEL_FILE_TYPES", "empty", "clean", "clean_name", "save",
           "delete", "remember", "names"]

MAX_SETS = 20  # saved sets per browser
MAX_NAME = 60  # characters of a set's name
LABEL_FILE_TYPES = (".txt", ".csv")


def empty() -> dict:
    return {"active": None, "sets": {}}


def _entry(value) -> dict | None:
    """A saved set as its checked `LabelSet.json()`, or None when it is not a valid set."""
    label_set = LabelSet.from_json(value)
    return label_set.json() if label_set else None


def clean(store) -> dict:
    """The well-formed part of a store from a browser (anything else becomes the empty store)."""
    if not isinstance(store, dict):
        return empty()
    sets = store.get("sets") if isinstance(store.get("sets"), dict) else {}
    kept = {name: entry for name, value in list(sets.items())[:MAX_SETS]
            if isinstance(name, str) and 0 < len(name) <= MAX_NAME and (entry := _entry(value)) is not None}
    return {"active": _entry(store.get("active")), "sets": kept}


def names(store) -> list[str]:
    return sorted(clean(store)["sets"], key=str.casefold)


def clean_name(name: str | None) -> str:
    """A set's name as it is kept (spaces collapsed); a Refusal when empty or too long."""
    name = " ".join((name or "").split())
    if not name:
        raise Refusal("sets_no_name")
    if len(name) > MAX_NAME:
        raise Refusal("sets_long_name", MAX_NAME)
    return name


def save(store, name: str | None, label_set: LabelSet) -> dict:
    """The store with `label_set` saved as `name` (replacing a set of that name)."""
    store, name = clean(store), clean_name(name)
    if name not in store["sets"] and len(store["sets"]) >= MAX_SETS:
        raise Refusal("sets_full", MAX_SETS)
    store["sets"][name] = label_set.json()
    return store


def delete(store, name: str | None) -> dict:
    store = clean(store)
    if name not in store["sets"]:
        raise Refusal("sets_unknown", name or "")
    del store["sets"][name]
    return store


def remember(store, label_set: LabelSet) -> dict:
    """The store with the visitor's active set recorded (it comes back after a reload)."""
    store = clean(store)
    store["active"] = label_set.json()
    return store


class SavedSetsBox:
    """Saved label sets over the Labels tab (whose `set_labels` applies them)."""

    def __init__(self, labels_tab):
        self.tab = labels_tab

    def _sets(self, store: dict, note: str, chosen: str | None = None) -> dict:
        listed = names(store)
        return {self.store: store, self.choice: gr.Dropdown(choices=listed, value=chosen if chosen in listed else None),
                self.note: note}

    def save_set(self, name: str, label_set: LabelSet, store: dict | None, request: gr.Request = None) -> dict:
        """Save the active set under `name` in the visitor's browser."""
        lang = lang_of(request)
        try:
            kept = save(store, name, label_set)
            name = clean_name(name)
        except Refusal as exc:
            return self._sets(clean(store), f"⚠️ {md_text(exc.say(lang))}")
        return self._sets(kept, say("sets_saved", lang, md_text(name), len(label_set.labels)), name)

    def delete_set(self, name: str | None, store: dict | None, request: gr.Request = None) -> dict:
        """Delete the saved set `name`."""
        lang = lang_of(request)
        try:
            kept = delete(store, name)
        except Refusal as exc:
            return self._sets(clean(store), f"⚠️ {md_text(exc.say(lang))}")
        return self._sets(kept, say("sets_deleted", lang, md_text(name)))

    def _apply(self, label_text: str, template_text: str | None, label_set: LabelSet, note: str, request,
               progress, encoder: str | None = None) -> dict:
        """The editors filled and applied, with `encoder` (default: the active set's text tower) (gr.Error when the
        text is refused: the old set stays active)."""
        templates = label_set.template_text() if template_text is None else template_text
        encoder = encoder or label_set.encoder
        applied = self.tab.set_labels(label_text, templates, encoder, label_set, request, progress)
        out = {self.tab.label_box: label_text, **applied, self.note: note, self.tab.encoder: encoder}
        if template_text is not None:
            out[self.tab.tpl_box] = template_text
        return out

    def load_set(self, name: str | None, store: dict | None, label_set: LabelSet, request: gr.Request = None,
                 progress=gr.Progress()) -> dict:
        """Put a saved set into the editors and make it active."""
        lang = lang_of(request)
        entry = clean(store)["sets"].get(name)
        if entry is None:
            return {self.note: f"⚠️ {md_text(Refusal('sets_unknown', name or '').say(lang))}"}
        return self._apply("\n".join(entry["labels"]), "\n".join(entry["templates"]), label_set,
                           say("sets_loaded", lang, md_text(name)), request, progress, entry.get("encoder", CLIP))

    def load_file(self, path: str | None, label_set: LabelSet, request: gr.Request = None,
                  progress=gr.Progress()) -> dict:
        """Read a `.txt`/`.csv` of labels into the label editor and apply it (the current templates stay)."""
        lang = lang_of(request)
        if not path:
            return {self.note: ""}
        try:
            if Path(path).suffix.lower() not in LABEL_FILE_TYPES:
                raise Refusal("sets_file_type", Path(path).suffix or "?")
            label_text = read_label_file(path)
        except Refusal as exc:
            return {self.note: f"⚠️ {md_text(exc.say(lang))}"}
        return self._apply(label_text, None, label_set, say("sets_file_loaded", lang), request, progress)

    def download_set(self, label_set: LabelSet) -> str:
        """The active labels as a `.txt` file (one per line), for the download button."""
        return files.label_file(label_set.label_text() + "\n")

    def remember_active(self, label_set: LabelSet, store: dict | None) -> dict:
        """The store with the visitor's active set in it (so it is back after a reload)."""
        return remember(store, label_set)

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, store: gr.BrowserState) -> None:
        """Lay out the box (inside the Labels tab) and wire its events."""
        tab, self.store = self.tab, store
        with gr.Accordion(say("sets_accordion"), open=False, elem_id="label-sets"):
            gr.Markdown(say("sets_intro"))
            with gr.Row():
                name = gr.Textbox(label=say("sets_name"), max_length=MAX_NAME, elem_id="set-name", scale=3, min_width=160)
                save_btn = gr.Button(say("sets_save"), scale=1, min_width=100, elem_id="set-save")
            with gr.Row():
                self.choice = gr.Dropdown([], label=say("sets_saved_list"), elem_id="set-choice", scale=3, min_width=160)
                load = gr.Button(say("sets_load"), scale=1, min_width=80, elem_id="set-load")
                delete_btn = gr.Button(say("sets_delete"), scale=1, min_width=80, variant="stop", elem_id="set-delete")
            with gr.Row():
                upload = gr.File(label=say("sets_file"), file_types=list(LABEL_FILE_TYPES), type="filepath",
                                 elem_id="set-file")
                # Its file is made whenever the active set changes (and on page load): a click downloads at once.
                self.download = gr.DownloadButton(say("sets_download"), elem_id="set-download")
            self.note = gr.Markdown(elem_id="set-note")

        sets_out = [store, self.choice, self.note]
        save_btn.click(self.save_set, [name, labels_state, store], sets_out, api_visibility="private")
        name.submit(self.save_set, [name, labels_state, store], sets_out, api_visibility="private")
        delete_btn.click(self.delete_set, [self.choice, store], sets_out, api_visibility="private")
        editors = [tab.label_box, tab.tpl_box, tab.encoder, labels_state, tab.summary, tab.hint_md, self.note]
        load.click(self.load_set, [self.choice, store, labels_state], editors, api_visibility="private")
        upload.upload(self.load_file, [upload, labels_state], editors, api_visibility="private")
        labels_state.change(self.download_set, labels_state, self.download, api_visibility="private")
        # Whatever makes a set active (Apply, a preset, a saved set, a file, a link) is remembered in the browser.
        labels_state.change(self.remember_active, [labels_state, store], store, api_visibility="private")
