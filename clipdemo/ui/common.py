"""What every tab shares: refusals said as sentences, progress bars, the model service, visitor-safe text.

`saying` is the one way a handler turns a `Refusal` (or ZeroGPU's) into a `gr.Error` in the visitor's language; an
unavailable dataset or model is one sentence, with details that show no server path. Handlers return Gradio's
`{component: value}` dicts; what they leave out stays as it is.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from ..core.labels import LabelSet
from ..core.words import Progress, ProgressFn, Refusal, say
from ..io.cifar import DataUnavailable
from ..serving.runtime import ModelFailed, Runtime
from ..serving.service import ZeroShot

__all__ = ["UI_API", "MODEL_WAIT_S", "CUSTOM", "saying", "gpu_sentence", "GPU_REFUSALS", "unavailable",
           "details_block", "progress_fn", "wait_for_service", "ensure_text", "md_text", "md_message", "toast_text",
           "hide_paths"]

log = logging.getLogger(__name__)

# The page's own events stay callable (the page and gradio_client use them) but out of the API docs and the
# MCP tool list, which hold the typed endpoints of `ui/api.py` only.
UI_API = "undocumented"
MODEL_WAIT_S = 180.0  # a click during start-up waits this long for the model before saying it is not ready
CUSTOM = "custom"  # the preset/template-set choice for a visitor's own list

# ZeroGPU's refusals (gr.Error titles raised by `spaces.GPU`, spaces 0.51) -> what the visitor is told first.
GPU_REFUSALS: dict[str, str] = {
    "ZeroGPU quota exceeded": "gpu_quota",
    "ZeroGPU pending credits exceeded": "gpu_quota",
    "ZeroGPU illegal duration": "gpu_duration",
    "ZeroGPU queue timeout": "gpu_queue",
    "ZeroGPU worker error": "gpu_worker",
}
GPU_REFUSED = "gpu_other"  # any other ZeroGPU error
_UNAVAILABLE = (DataUnavailable, ModelFailed)  # their sentences hold server paths and URLs: the log has them whole


@contextmanager
def saying(lang: str) -> Iterator[None]:
    """Refusals raised inside become `gr.Error` sentences in `lang`; an unavailable dataset or model its short
    sentence (`unavailable`); a `gr.Error` stays, unless it is ZeroGPU's refusal (said in our words first)."""
    try:
        yield
    except gr.Error as exc:
        if (sentence := gpu_sentence(exc, lang)) is None:
            raise
        raise gr.Error(toast_text(sentence), title=say("gpu_title", lang)) from None
    except _UNAVAILABLE as exc:
        raise gr.Error(toast_text(unavailable(exc, lang))) from None
    except Refusal as exc:
        raise gr.Error(toast_text(exc.say(lang))) from None


def gpu_sentence(exc: gr.Error, lang: str) -> str | None:
    """The sentence for a ZeroGPU refusal (None for any other error): ours first, then ZeroGPU's own words
    as plain text (their message may be HTML with links)."""
    title = str(getattr(exc, "title", "") or "")
    if not title.startswith("ZeroGPU"):
        return None
    said = re.sub(r"<[^>]+>", "", html.unescape(str(exc.message))).strip()  # unescape first: no tag survives
    lead = say(GPU_REFUSALS.get(title, GPU_REFUSED), lang)
    return say("gpu_said", lang, lead, said) if said else lead


def unavailable(exc: Refusal, lang: str) -> str:
    """What a visitor is told when the dataset or the model is unavailable: one sentence (what is
    unavailable, what still works, that the logs have the details), then the details without server paths."""
    log.warning("told a visitor: %s", exc)
    lead = say("data_unavailable" if isinstance(exc, DataUnavailable) else "model_unavailable", lang)
    return f"{lead} {say('details', lang)}: {hide_paths(exc.say(lang))}"


def details_block(details: str, lang: str) -> str:
    """Markdown: `details` (server paths taken out) in a collapsed section."""
    return (f"\n\n<details><summary>{say('details', lang)}</summary>\n\n{md_message(hide_paths(details))}\n\n"
            "</details>")


def progress_fn(progress, lang: str) -> ProgressFn:
    """A `gr.Progress` as the core's `Progress` callback, said in `lang`."""
    def report(step: Progress) -> None:
        done, total, what = step
        words = what.say(lang)
        progress(done / total if total else None, desc=f"{words} {done}/{total}" if total else words)

    return report


def wait_for_service(runtime: Runtime, progress, lang: str) -> ZeroShot:
    """The loaded model service, waiting (with a progress note) while it loads; gr.Error if it cannot."""
    if not runtime.ready:
        progress(0, desc=say("waiting_model", lang))
    with saying(lang):
        return runtime.service(timeout=MODEL_WAIT_S)


def ensure_text(zs: ZeroShot, label_set: LabelSet, progress, lang: str) -> None:
    """Encode the visitor's label set (once; then it is cached), with a progress bar."""
    if not zs.has_text_features(label_set):
        progress(0, desc=say("encoding_prompts", lang, label_set.size))
        with saying(lang):
            zs.text_features(label_set, progress=progress_fn(progress, lang))


# -- text a visitor sees ---------------------------------------------------------------------------------------
_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&")
_LITERAL = {".": "&#46;", ":": "&#58;"}
_URL = re.compile(r"https?://[^\s<>'\"`]+[^\s<>'\"`.,;:!?)\]]")
# A path starts after a space, quote, bracket or the start of the text (never inside a URL, where a host or
# `:` comes first), with /, ~/ or a drive letter, and runs to the next space, quote or bracket.
_PATH = re.compile(r"""(?<![\w:/.~\\=-])(?:~?/|[A-Za-z]:\\)[^\s'"<>()\[\]]*""")


def md_text(value: str) -> str:
    """Visitor text shown literally inside Markdown: every Markdown/HTML-significant character escaped, so
    `<img onerror=...>` renders as those characters, never as a tag; `.` and `:` become entities, so a
    URL-like label is never auto-linked (a shared link can't put a live link on the page) and no
    backslash shows (the auto-linker would take `example\\.com` as it stands)."""
    return "".join(_LITERAL.get(ch) or ("\\" + ch if ch in _MD_SPECIAL else ch) for ch in value)


def md_message(value: str) -> str:
    """The server's own text (status, errors with the URLs they name) inside Markdown: URLs as links, whole;
    every other special character backslash-escaped. Never for visitor text: see `md_text`."""
    out, at = [], 0
    for m in _URL.finditer(value):
        out += [_md_escape(value[at:m.start()]), f"<{m.group(0)}>"]  # a CommonMark autolink: no escapes inside
        at = m.end()
    out.append(_md_escape(value[at:]))
    return "".join(out)


def _md_escape(value: str) -> str:
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in value)


def toast_text(value: str) -> str:
    """Text shown literally in a toast (gr.Error/Warning/Info), which reads HTML: `<urlopen error x>` stays
    visible instead of becoming a tag."""
    return html.escape(value, quote=False)


def _last(match: re.Match) -> str:
    path = match.group(0).rstrip(".,;:")
    tail = match.group(0)[len(path):]
    name = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    return f"…/{name}{tail}" if name and name != "~" else f"…{tail}"


def hide_paths(value: str) -> str:
    """What a visitor may see of a server-side error: every absolute server path (`/home/user/.cache/x.pt`,
    `C:\\data\\x`, `~/.cache/...`) cut to `…/last-part`, URLs whole. The full text goes to the log."""
    return _PATH.sub(_last, value)
