"""Configuration read from the environment, in one place; the variables are listed in docs/configuration.md.

Nothing else in the package reads a setting from `os.environ`. Reading happens when `from_env()` is called, never at
import; a bad value is a `Refusal` naming the variable. The compute path `auto` becomes `zerogpu` where Hugging Face
sets SPACES_ZERO_GPU=true, and is otherwise left to the model loader (`cuda` when a GPU is visible, else `cpu`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.model import DEFAULT_MODEL
from ..core.words import Refusal
from ..weights.download import Hub
from ..weights.load import default_cache
from .scheduler import MAX_WAIT_S, MAX_WAITING

__all__ = ["Settings", "from_env", "to_env"]
FILE_TTL_S = 3600
BROWSER_KEY = "clipdemo-labels-v1"


@dataclass(frozen=True)
class Settings:
    """Process-wide settings; see the module docstring for the variables behind each field."""

    weights: str = DEFAULT_MODEL
    cache_dir: Path = field(default_factory=default_cache)
    data_root: Path = field(default_factory=lambda: default_cache() / "data")
    device: str = "auto"
    allow_download: bool = True
    seed: int = 0
    backend: str = "auto"
    threads: int = 0  # 0: as many as the process's vCPUs
    max_wait_s: float = MAX_WAIT_S  # an interactive model call expected to wait longer is refused (scheduler.py)
    max_waiting: int = MAX_WAITING  # model calls that may wait for the model at once
    file_ttl_s: int = FILE_TTL_S  # uploads and shown files untouched this long are removed (swept every quarter)
    search_index: bool = True  # encode every CIFAR-100 test image for search, in the background, once the model is up
    # A visitor's saved label sets live in their browser (gr.BrowserState) under this key, encrypted with this
    # secret; both must stay the same across restarts, or every visitor's sets are lost at each restart.
    browser_key: str = BROWSER_KEY
    browser_secret: str = "clipdemo:local"
    space_id: str = ""  # "owner/name" on Hugging Face (SPACE_ID): shared links then point at the Space's page
    hub: Hub = field(default_factory=Hub)  # the Hugging Face Hub, its cache (which `preload_from_hub` fills) and HF_HUB_OFFLINE


_TRUE, _FALSE = {"1", "t", "true", "yes", "on"}, {"0", "f", "false", "no", "off"}


def _flag(env, name: str, default: bool) -> bool:
    """The one reading of an on/off variable, ours and Hugging Face's alike: 1/true/yes/on or 0/false/no/off (any
    case), unset or empty for `default`; anything else is refused, naming the variable."""
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in _TRUE | _FALSE:
        raise Refusal("setting_not_flag", name, repr(env[name])[:40])
    return value in _TRUE


def _int(env, name: str) -> int:
    try:
        return int(env.get(name, "0") or 0)
    except ValueError:
        raise Refusal("setting_not_int", name, repr(env[name])) from None


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Read `Settings` from `environ` (default: `os.environ`); unset variables keep their defaults."""
    env = os.environ if environ is None else environ
    cache = Path(env.get("CLIPDEMO_CACHE", "") or default_cache()).expanduser()
    seed, threads = _int(env, "CLIPDEMO_SEED"), _int(env, "CLIPDEMO_THREADS")
    max_waiting = _int(env, "CLIPDEMO_MAX_WAITING") or MAX_WAITING
    if max_waiting < 1:
        raise Refusal("setting_at_least", "CLIPDEMO_MAX_WAITING", 1, max_waiting)
    try:
        max_wait_s = float(env.get("CLIPDEMO_MAX_WAIT_S", "") or MAX_WAIT_S)
    except ValueError:
        raise Refusal("setting_not_seconds", "CLIPDEMO_MAX_WAIT_S", repr(env["CLIPDEMO_MAX_WAIT_S"])) from None
    if not max_wait_s > 0:
        raise Refusal("setting_positive", "CLIPDEMO_MAX_WAIT_S", f"{max_wait_s:g}")
    file_ttl = _int(env, "CLIPDEMO_FILE_TTL") or FILE_TTL_S
    if file_ttl < 60:
        raise Refusal("setting_at_least", "CLIPDEMO_FILE_TTL", 60, file_ttl)
    space_id = env.get("SPACE_ID", "").strip()
    device = env.get("CLIPDEMO_DEVICE", "auto").strip().lower() or "auto"
    if device == "auto" and _flag(env, "SPACES_ZERO_GPU", False):
        device = "zerogpu"  # the Space's hardware says ZeroGPU (the test `spaces` itself uses)
    if device not in {"auto", "cpu", "zerogpu"} and not device.startswith("cuda"):
        raise Refusal("setting_device", repr(device))
    return Settings(
        weights=env.get("CLIPDEMO_WEIGHTS", "").strip() or DEFAULT_MODEL,
        cache_dir=cache,
        data_root=Path(env.get("CLIPDEMO_DATA", str(cache / "data"))).expanduser(),
        device=device,
        allow_download=_flag(env, "CLIPDEMO_DOWNLOAD", True),
        seed=seed,
        backend=env.get("CLIPDEMO_BACKEND", "auto").strip().lower() or "auto",
        threads=threads,
        max_wait_s=max_wait_s,
        max_waiting=max_waiting,
        file_ttl_s=file_ttl,
        search_index=_flag(env, "CLIPDEMO_SEARCH_INDEX", True),
        browser_key=env.get("CLIPDEMO_BROWSER_KEY", "").strip() or BROWSER_KEY,
        browser_secret=env.get("CLIPDEMO_BROWSER_SECRET", "").strip() or f"clipdemo:{space_id or 'local'}",
        space_id=space_id,
        hub=Hub(_hf_hub_cache(env), (env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"),
                _flag(env, "HF_HUB_OFFLINE", False)),
    )


def to_env(settings: Settings) -> dict[str, str]:
    """The variables that make `from_env()` return `settings` again (for a child process's environment)."""
    return {
        "CLIPDEMO_WEIGHTS": settings.weights,
        "CLIPDEMO_CACHE": str(settings.cache_dir),
        "CLIPDEMO_DATA": str(settings.data_root),
        "CLIPDEMO_DEVICE": settings.device,
        "CLIPDEMO_DOWNLOAD": "1" if settings.allow_download else "0",
        "CLIPDEMO_SEED": str(settings.seed),
        "CLIPDEMO_BACKEND": settings.backend,
        "CLIPDEMO_THREADS": str(settings.threads),
        "CLIPDEMO_MAX_WAIT_S": f"{settings.max_wait_s:g}",
        "CLIPDEMO_MAX_WAITING": str(settings.max_waiting),
        "CLIPDEMO_FILE_TTL": str(settings.file_ttl_s),
        "CLIPDEMO_SEARCH_INDEX": "1" if settings.search_index else "0",
        "CLIPDEMO_BROWSER_KEY": settings.browser_key,
        "CLIPDEMO_BROWSER_SECRET": settings.browser_secret,
        "SPACE_ID": settings.space_id,
        "HF_HUB_CACHE": str(settings.hub.cache),
        "HF_ENDPOINT": settings.hub.endpoint,
        "HF_HUB_OFFLINE": "1" if settings.hub.offline else "",
    }


def _hf_hub_cache(env) -> Path:
    """The Hub cache `preload_from_hub` fills and `hf_hub_download` uses: HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub."""
    if cache := env.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    home = env.get("HF_HOME") or str(Path(env.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface")
    return Path(home).expanduser() / "hub"
