"""Reading checkpoint files into a state dict, whatever their format, without running code from them.

TorchScript (OpenAI's), safetensors (open_clip's on the Hub) and `torch.save` files (read with `weights_only=True`)
are told apart by their bytes. Every failure is a `WeightsError` naming the file. No model code here.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch

from ..core.model import WeightsError

__all__ = ["read_checkpoint"]


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint file at `path` (any of the three formats)."""
    if not path.is_file():
        raise WeightsError("weights_no_file", path)
    if _is_torchscript(path):
        return _read_torchscript(path)
    return _read_safetensors(path) if _is_safetensors(path) else _read_state_dict(path)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a `code/` folder; torch.save files have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a plain state dict with `weights_only=True` (never unpickles code)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # untrusted bytes: the weights_only unpickler raises many types (IndexError too)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError("weights_unloadable", path.name, first) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError("weights_not_state_dict", path.name)
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length and a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors: plain data, no pickle at all."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError("weights_bad_safetensors", path.name, exc) from exc


def _read_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive (the official checkpoint format), as `clip.load` reads them."""
    try:
        with warnings.catch_warnings():  # torch 2.14 marks torch.jit.load as deprecated
            warnings.filterwarnings("ignore", category=FutureWarning)
            archive = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch.jit.load raises various types for a bad archive
        raise WeightsError("weights_bad_torchscript", path.name, exc) from exc
    return dict(archive.state_dict())
