"""From settings to a ready service: threads, model load, image backend, stored features.

Holds the start-up steps that the CLI and the app's `Runtime` share, so they are written once:
`open_service` (threads and model load), `speed_up` (the parity-checked image backend, with the
ONNX export run by `export_in_child`, and stored CIFAR-100 features merged into the store) and
`export_in_child` (the one way the export child process is started). No gradio, no threads here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from . import accel
from .backends import cpu_threads
from .features import FeatureFileError, ImageFeatureStore, default_path
from .model import load_model
from .progress import ProgressFn
from .service import ZeroShot
from .settings import Settings, to_env

__all__ = ["open_service", "speed_up", "export_in_child", "release_freed_memory"]

log = logging.getLogger(__name__)
EXPORT_TIMEOUT_S = 600


def release_freed_memory() -> None:
    """Hand memory freed by loading (temporary copies of the weights) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def open_service(settings: Settings, progress: ProgressFn | None = None) -> ZeroShot:
    """Set the CPU threads and load the weights `settings` name; WeightsError/ValueError say why not."""
    torch.set_num_threads(settings.threads or cpu_threads())
    loaded = load_model(settings.weights, device=settings.device, cache_dir=settings.cache_dir,
                        allow_download=settings.allow_download, seed=settings.seed, progress=progress)
    release_freed_memory()
    path = accel.PATHS["zerogpu"] if settings.device == "zerogpu" else accel.path_for(loaded.device.type)
    return ZeroShot(loaded, path=path, max_waiting=settings.max_waiting,
                   max_wait_s=settings.max_wait_s)


def export_in_child(settings: Settings, path: Path) -> None:
    """Run `python -m clipdemo export-onnx` in a child process: its temporary copies of the weights
    never count against this process's memory. RuntimeError with the child's last line if it fails."""
    child = dataclasses.replace(settings, allow_download=False, device="cpu")  # the parent fetched the weights
    cmd = [sys.executable, "-m", "clipdemo", "export-onnx", "--out", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                          env={**os.environ, **to_env(child)})
    if done.returncode != 0:
        raise RuntimeError(f"export failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def speed_up(zs: ZeroShot, settings: Settings, *, stored_features: bool = True) -> str:
    """Choose the image backend (exported in a child process, parity-checked) and, with `stored_features`,
    merge the saved CIFAR-100 features into the service's store; returns the backend's note. Never raises
    for a bad cache file."""
    note = zs.choose_backend(settings.backend, settings.cache_dir, lambda p: export_in_child(settings, p))
    release_freed_memory()  # the export's temporary buffers
    log.info("image encoder: %s", note)
    path = default_path(settings.cache_dir, zs.info.sha256)
    if stored_features and path is not None and path.is_file():
        try:
            added = zs.add_stored_features(ImageFeatureStore.load(path, zs.info.identity))
            log.info("loaded %d stored CIFAR-100 image features from %s", added, path)
        except FeatureFileError as exc:
            log.warning("ignoring %s", exc)
    return note
