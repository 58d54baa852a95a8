"""The one place that imports openai-clip (on first use), with or without `pkg_resources`; and transformers.

openai-clip 1.0.1 does `from pkg_resources import packaging` only to compare torch versions. setuptools
removed `pkg_resources` in version 82, and a Space build may bring a newer setuptools than the pin (or
none), so when `pkg_resources` cannot be imported, a stand-in module offering the same `packaging` (the
`packaging` distribution itself) is put in its place while clip imports.

`import_transformers` imports `transformers` (the multilingual text tower's DistilBERT and tokenizer) the same
way: on first use, whole, under the lock; a missing package is a `WeightsError` saying how to fix it.

Thread safety: the first call imports under a lock and returns only once `clip` and its submodules are
complete; later calls return the finished module. (An earlier version returned `sys.modules["clip"]` as soon
as `clip.clip` appeared there, which is the moment another thread *began* importing it: a half-made module.)
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import types
import warnings
from types import ModuleType


_ABSENT = object()
_LOCK = threading.Lock()  # the pkg_resources stand-in is in sys.modules while clip imports: one import at a time


def _pkg_resources_missing() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            importlib.import_module("pkg_resources")
        return False
    except ImportError:
        return True


@functools.cache
def import_clip() -> ModuleType:
    """`import clip` (with `clip.clip`, `clip.model` and `clip.simple_tokenizer` loaded), complete."""
    with _LOCK:
        return _import()


def _import() -> ModuleType:
    shim = None
    if _pkg_resources_missing():
        import packaging.version

        shim = types.ModuleType("pkg_resources")
        shim.packaging = packaging  # the only name clip takes from pkg_resources
        saved = sys.modules.get("pkg_resources", _ABSENT)
        sys.modules["pkg_resources"] = shim
    try:
        with warnings.catch_warnings():
            # openai-clip 1.0.1 does `from pkg_resources import packaging`; setuptools is pinned below 81 for it.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import clip
            import clip.clip
            import clip.model
            import clip.simple_tokenizer
    finally:
        if shim is not None:  # leave sys.modules as it was found
            if saved is _ABSENT:
                sys.modules.pop("pkg_resources", None)
            else:
                sys.modules["pkg_resources"] = saved
    return clip


@functools.cache
def tokenizer():
    """CLIP's byte-pair tokenizer (`clip.simple_tokenizer.SimpleTokenizer`, the vocabulary `clip.tokenize` uses),
    made once: token counts and the Labels tab's token table read it."""
    return import_clip().simple_tokenizer.SimpleTokenizer()


@functools.cache
def import_transformers() -> ModuleType:
    """`import transformers` with what the multilingual tower uses, once and whole: the first caller imports under
    the lock, so a request thread and the start-up thread never see it half made (it takes seconds on a busy host).
    Not installed: ImportError (`core.multilingual` says it with the fix)."""
    with _LOCK:
        import transformers
        from transformers import BertTokenizerFast, DistilBertConfig, DistilBertModel  # noqa: F401
        return transformers
