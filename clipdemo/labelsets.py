"""A visitor's saved label sets: plain data that lives in their own browser, never on the server.

Holds the store's shape (`{"active": {...} | None, "sets": {name: {"labels": [...], "templates": [...]}}}`),
`clean(store)` (what came back from a browser is untrusted: malformed entries are dropped, never trusted),
`save`, `delete`, `remember`, `names`, `label_file_text` (a `.txt` or `.csv` of labels read into the label
editor's text) and `as_txt`. Every refusal is a `clipdemo.i18n.Refusal`. Labels are checked by
`clipdemo.prompts` wherever they are used, exactly as typed ones are.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .i18n import Refusal
from .prompts import MAX_LABELS, MAX_TEMPLATES

__all__ = ["MAX_SETS", "MAX_NAME", "MAX_FILE_BYTES", "LABEL_FILE_TYPES", "empty", "clean", "clean_name", "save",
           "delete", "remember", "names", "label_file_text", "as_txt"]

MAX_SETS = 20  # saved sets per browser
MAX_NAME = 60  # characters of a set's name
MAX_FILE_BYTES = 256 * 1024  # a label file; 500 labels of 200 characters fit with room to spare
LABEL_FILE_TYPES = (".txt", ".csv")


def empty() -> dict:
    return {"active": None, "sets": {}}


def _entry(value) -> dict | None:
    """`{"labels": [...], "templates": [...]}` with string items within the caps, or None."""
    if not isinstance(value, dict):
        return None
    labels, templates = value.get("labels"), value.get("templates")
    ok = (isinstance(labels, list) and isinstance(templates, list) and 0 < len(labels) <= MAX_LABELS
          and 0 < len(templates) <= MAX_TEMPLATES and all(isinstance(s, str) for s in labels + templates))
    return {"labels": list(labels), "templates": list(templates)} if ok else None


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


def save(store, name: str | None, labels: tuple[str, ...], templates: tuple[str, ...]) -> dict:
    """The store with `labels`/`templates` saved as `name` (replacing a set of that name)."""
    store, name = clean(store), clean_name(name)
    if name not in store["sets"] and len(store["sets"]) >= MAX_SETS:
        raise Refusal("sets_full", MAX_SETS)
    store["sets"][name] = {"labels": list(labels), "templates": list(templates)}
    return store


def delete(store, name: str | None) -> dict:
    store = clean(store)
    if name not in store["sets"]:
        raise Refusal("sets_unknown", name or "")
    del store["sets"][name]
    return store


def remember(store, labels: tuple[str, ...], templates: tuple[str, ...]) -> dict:
    """The store with the visitor's active set recorded (it comes back after a reload)."""
    store = clean(store)
    store["active"] = {"labels": list(labels), "templates": list(templates)}
    return store


def label_file_text(path: str | Path) -> str:
    """The labels of a `.txt` (one per line) or `.csv` (the first column; a header named `label` is skipped)
    file, as label-editor text (one per line). Validation is the editor's own, when applied."""
    path = Path(path)
    if path.suffix.lower() not in LABEL_FILE_TYPES:
        raise Refusal("sets_file_type", path.suffix or "?")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise Refusal("sets_file_big", MAX_FILE_BYTES // 1024)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Refusal("sets_file_encoding") from None
    if path.suffix.lower() == ".txt":
        return raw
    rows = [row for row in csv.reader(io.StringIO(raw)) if row and row[0].strip()]
    if rows and rows[0][0].strip().lower() in {"label", "labels", "name", "class"}:
        rows = rows[1:]
    return "\n".join(row[0].strip() for row in rows)


def as_txt(labels: tuple[str, ...]) -> str:
    """A label set as a `.txt` file's text (one label per line), which `label_file_text` reads back."""
    return "\n".join(labels) + "\n"
