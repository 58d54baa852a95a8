"""The one place that imports openai-clip (lazily), silencing its pkg_resources deprecation warning."""

from __future__ import annotations

import warnings
from types import ModuleType


def import_clip() -> ModuleType:
    """`import clip` (with `clip.clip`, `clip.model` and `clip.simple_tokenizer` loaded)."""
    with warnings.catch_warnings():
        # openai-clip 1.0.1 does `from pkg_resources import packaging`; setuptools is pinned below 81 for it.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import clip
        import clip.clip
        import clip.model
        import clip.simple_tokenizer
    return clip
