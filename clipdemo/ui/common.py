"""What every tab shares: the visitor's label state, named results turned into outputs, errors, progress.

Holds `LabelState` (a visitor's labels and templates, kept in `gr.State`), `KEEP` and `event()` (a
handler returns a frozen dataclass of named values; `event` maps those names onto components in one
place, leaving out fields set to `KEEP`), `user_errors` (core errors become `gr.Error` sentences, in the
visitor's language where the core gave a `Refusal`), `unavailable` and `details_block` (an unavailable
dataset or model: one sentence, details without server paths), `progress_fn` (gr.Progress as the core's
`ProgressFn`), `wait_for_service`, and the escapers `md_text` (visitor text), `md_message` (the server's
own, with links) and `toast_text`.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import inspect
import logging
import re
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import gradio as gr

from ..data import DataError, DataUnavailable
from ..redact import hide_paths
from ..presets import LABEL_PRESETS, TEMPLATE_SETS
from ..progress import Cancelled, ProgressFn
from ..scheduler import Busy
from ..runtime import ModelFailed, ModelUnavailable, Runtime
from ..service import ZeroShot
from .lang import say, t

__all__ = ["UI_API", "LabelState", "KEEP", "event", "user_errors", "busy_errors", "gpu_sentence", "GPU_REFUSALS", "progress_fn",
           "wait_for_service", "ensure_text", "md_text", "md_message", "toast_text", "unavailable", "details_block", "CUSTOM"]

log = logging.getLogger(__name__)

# The page's own events stay callable (the page and gradio_client use them) but out of the API docs and the
# MCP tool list, which hold the typed endpoints of `ui/api.py` only.
UI_API = "undocumented"
MODEL_WAIT_S = 180.0  # a click during start-up waits this long for the model before saying it is not ready
CUSTOM = "custom"  # the preset/template-set choice for a visitor's own list


@dataclass(frozen=True)
class LabelState:
    """One visitor's active label set (deep-copyable plain data; never a model)."""

    labels: tuple[str, ...] = LABEL_PRESETS["cifar100"].labels
    templates: tuple[str, ...] = TEMPLATE_SETS["single"].templates
    label_preset: str = "cifar100"
    template_set: str = "single"


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()  # a result field with this value leaves its component as it is


def _outputs(result, components: dict[str, gr.components.Component]) -> dict:
    out = {comp: value for name, comp in components.items() if (value := getattr(result, name)) is not KEEP}
    return out or {comp: gr.skip() for comp in components.values()}  # Gradio reads an empty dict as one value


def event(fn: Callable, inputs, outputs: dict[str, gr.components.Component]) -> dict:
    """Keyword arguments for a Gradio event: `fn` (returning, or yielding, a dataclass of named results)
    wrapped to return `{component: value}` for the `outputs` names, and the input and output lists."""
    result = typing.get_type_hints(fn).get("return")
    if typing.get_args(result):  # Iterator[X] for generators
        result = typing.get_args(result)[0]
    missing = set(outputs) - {f.name for f in dataclasses.fields(result)}
    if missing:
        raise ValueError(f"{fn.__name__} has no result named {', '.join(sorted(missing))}.")
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def run_gen(*args, **kwargs):
            with busy_errors():
                for result in fn(*args, **kwargs):
                    yield _outputs(result, outputs)

        return dict(fn=run_gen, inputs=inputs, outputs=list(outputs.values()))

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with busy_errors():
            return _outputs(fn(*args, **kwargs), outputs)

    return dict(fn=run, inputs=inputs, outputs=list(outputs.values()))


_BUSY = (Busy, Cancelled, ModelUnavailable)  # what a shared model can answer anywhere: full, timed out, not loaded

# ZeroGPU's refusals (gr.Error titles raised by `spaces.GPU`, spaces 0.51) -> what the visitor is told first.
GPU_REFUSALS: dict[str, str] = {
    "ZeroGPU quota exceeded": "gpu_quota",
    "ZeroGPU pending credits exceeded": "gpu_quota",
    "ZeroGPU illegal duration": "gpu_duration",
    "ZeroGPU queue timeout": "gpu_queue",
    "ZeroGPU worker error": "gpu_worker",
}
GPU_REFUSED = "gpu_other"  # any other ZeroGPU error


def gpu_sentence(exc: gr.Error) -> str | None:
    """The sentence for a ZeroGPU refusal (None for any other error): ours first, then ZeroGPU's own words
    as plain text (their message may be HTML with links)."""
    title = str(getattr(exc, "title", "") or "")
    if not title.startswith("ZeroGPU"):
        return None
    said = re.sub(r"<[^>]+>", "", html.unescape(str(exc.message))).strip()  # unescape first: no tag survives
    lead = t(GPU_REFUSALS.get(title, GPU_REFUSED))
    return t("gpu_said", lead, said) if said else lead


def user_errors():
    """Turn the core's expected errors (bad input, data or model unavailable, ZeroGPU refused) into `gr.Error`
    sentences."""
    return _told((ValueError, DataError, *_BUSY))


def busy_errors():
    """Turn what a shared, busy model can answer anywhere in a handler (the gate is full, a time limit was
    reached, the model is not loaded, ZeroGPU refused: see `gpu_sentence`) into `gr.Error` sentences."""
    return _told(_BUSY)


@contextmanager
def _told(kinds: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Errors of `kinds` become `gr.Error` sentences in the visitor's language; an unavailable dataset or model
    its short sentence (`unavailable`); a `gr.Error` stays, unless it is ZeroGPU's refusal (`_retell`)."""
    try:
        yield
    except gr.Error as exc:
        _retell(exc)  # already a sentence for the visitor, unless ZeroGPU's
    except _UNAVAILABLE as exc:
        raise gr.Error(toast_text(unavailable(exc))) from None
    except kinds as exc:
        raise gr.Error(toast_text(say(exc))) from None


_UNAVAILABLE = (DataUnavailable, ModelFailed)  # their messages hold server paths and URLs: the log has them whole


def unavailable(exc: Exception) -> str:
    """What a visitor is told when the dataset or the model is unavailable: one sentence (what is
    unavailable, what still works, that the logs have the details), then the details without server paths."""
    log.warning("told a visitor: %s", exc)
    lead = t("data_unavailable") if isinstance(exc, DataUnavailable) else t("model_unavailable")
    return f"{lead} {t('details')}: {hide_paths(str(exc))}"


def details_block(text: str) -> str:
    """Markdown: `text` (server paths taken out) in a collapsed section."""
    return f"\n\n<details><summary>{t('details')}</summary>\n\n{md_message(hide_paths(text))}\n\n</details>"


def _retell(exc: gr.Error):
    """Raise `exc` again, or our sentence in its place when it is a ZeroGPU refusal."""
    if (sentence := gpu_sentence(exc)) is None:
        raise exc
    raise gr.Error(toast_text(sentence), title=t("gpu_title")) from None


# The core's progress words the page shows, said in the visitor's language (any other passes as it is).
PROGRESS_WORDS = {"encoding prompts": "progress_encoding_prompts", "classifying images": "progress_classifying"}


def progress_fn(progress) -> ProgressFn:
    """A `gr.Progress` as the core's `(done, total, what)` callback."""
    def report(done: int, total: int, what: str) -> None:
        what = t(PROGRESS_WORDS[what]) if what in PROGRESS_WORDS else what
        progress(done / total if total else None, desc=f"{what} {done}/{total}" if total else what)

    return report


def wait_for_service(runtime: Runtime, progress) -> ZeroShot:
    """The loaded model service, waiting (with a progress note) while it loads; gr.Error if it cannot."""
    if not runtime.ready:
        progress(0, desc=t("waiting_model"))
    with user_errors():
        return runtime.service(timeout=MODEL_WAIT_S)


def ensure_text(zs: ZeroShot, state: LabelState, progress) -> None:
    """Encode the visitor's label set (once; then it is cached), with a progress bar."""
    if not zs.has_text_features(state.labels, state.templates):
        progress(0, desc=t("encoding_prompts", len(state.labels) * len(state.templates)))
        zs.text_features(state.labels, state.templates, progress=progress_fn(progress))


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&")
_LITERAL = {".": "&#46;", ":": "&#58;"}
_URL = re.compile(r"https?://[^\s<>'\"`]+[^\s<>'\"`.,;:!?)\]]")


def md_text(text: str) -> str:
    """Visitor text shown literally inside Markdown: every Markdown/HTML-significant character escaped, so
    `<img onerror=...>` renders as those characters, never as a tag; `.` and `:` become entities, so a
    URL-like label is never auto-linked (a shared link can't put a live link on the page) and no
    backslash shows (the auto-linker would take `example\\.com` as it stands)."""
    return "".join(_LITERAL.get(ch) or ("\\" + ch if ch in _MD_SPECIAL else ch) for ch in text)


def md_message(text: str) -> str:
    """The server's own text (status, errors with the URLs they name) inside Markdown: URLs as links, whole;
    every other special character backslash-escaped. Never for visitor text: see `md_text`."""
    out, at = [], 0
    for m in _URL.finditer(text):
        out += [_md_escape(text[at:m.start()]), f"<{m.group(0)}>"]  # a CommonMark autolink: no escapes inside
        at = m.end()
    out.append(_md_escape(text[at:]))
    return "".join(out)


def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def toast_text(text: str) -> str:
    """Text shown literally in a toast (gr.Error/Warning/Info), which reads HTML: `<urlopen error x>` stays
    visible instead of becoming a tag."""
    return html.escape(text, quote=False)
