"""The one place that imports openai-clip (lazily), with or without `pkg_resources`.

openai-clip 1.0.1 does `from pkg_resources import packaging` only to compare torch versions. setuptools
removed `pkg_resources` in version 82, and a Space build may bring a newer setuptools than the pin (or
none), so when `pkg_resources` cannot be imported, a stand-in module offering the same `packaging` (the
`packaging` distribution itself) is put in its place while clip imports.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from types import ModuleType


_ABSENT = object()


def _pkg_resources_missing() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            importlib.import_module("pkg_resources")
        return False
    except ImportError:
        return True


def import_clip() -> ModuleType:
    """`import clip` (with `clip.clip`, `clip.model` and `clip.simple_tokenizer` loaded)."""
    if "clip.clip" in sys.modules:
        return sys.modules["clip"]
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
