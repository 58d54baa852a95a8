"""Image-encoder backends: the same function (pixels -> image features), computed different ways.

The automatic choice takes ONNX Runtime only after it passes a parity check against eager PyTorch on a probe image,
else eager; bf16 is opt-in and approximate. The ONNX export is cached on disk; nothing is exported or loaded at import.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.words import Refusal
from ..core.zeroshot import normalise
from .cpus import cpu_threads

__all__ = ["BACKENDS", "ImageEncoder", "eager_encoder", "onnx_encoder", "bf16_encoder", "parity", "choose",
           "select", "onnx_cache_path", "export_onnx", "PARITY_TOL", "cpu_threads"]

log = logging.getLogger(__name__)
PARITY_TOL = 1e-6  # max abs difference of L2-normalised features that counts as "the same output" (measured ~1e-7;
# tests/test_served_parity.py holds the served probabilities to 1e-5 of the notebook with this gate)

# name -> what it is (each `ImageEncoder` says whether it is exact). "auto" picks onnxruntime when it passes
# parity, else eager.
BACKENDS: dict[str, str] = {
    "eager": "PyTorch eager, the model's own encode_image",
    "onnxruntime": "ONNX Runtime fp32 (exported from the same weights, parity-checked)",
    "bf16": "PyTorch bfloat16 autocast on CPU (approximate; opt-in only)",
}


@dataclass(frozen=True)
class ImageEncoder:
    """`encode(pixels [B, 3, R, R]) -> [B, D]` unnormalised float32 features, with its backend's name."""

    name: str
    encode: Callable[[torch.Tensor], torch.Tensor]
    exact: bool


def eager_encoder(model: torch.nn.Module) -> ImageEncoder:
    device = next(model.parameters()).device

    @torch.inference_mode()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return model.encode_image(pixels.to(device=device, dtype=model.dtype)).float().cpu()

    return ImageEncoder("eager", encode, True)


def bf16_encoder(model: torch.nn.Module) -> ImageEncoder:
    @torch.inference_mode()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.encode_image(pixels.float()).float()

    return ImageEncoder("bf16", encode, False)


def export_onnx(model: torch.nn.Module, resolution: int, path: Path) -> Path:
    """Export the vision tower to `path` (fp32, dynamic batch), atomically (temp file, then rename)."""
    if next(model.parameters()).dtype != torch.float32:
        raise Refusal("onnx_fp32")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter is marked deprecated in torch 2.14
            torch.onnx.export(model.visual, (torch.zeros(1, 3, resolution, resolution),), tmp,
                              input_names=["pixels"], output_names=["features"],
                              dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}}, dynamo=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def onnx_encoder(model: torch.nn.Module, resolution: int, path: Path, threads: int | None = None,
                 exporter: Callable[[Path], None] | None = None) -> ImageEncoder:
    """ONNX Runtime on CPU over the vision tower exported to `path` (exported first if missing).

    `exporter(path)` does the export when given (the app runs it in a child process, so the
    exporter's temporary copies of the weights never count against the server's memory).
    """
    import onnxruntime as ort

    if next(model.parameters()).dtype != torch.float32:
        raise Refusal("onnx_fp32")
    if not path.is_file():
        log.info("exporting the vision tower to %s", path)
        (exporter or (lambda p: export_onnx(model, resolution, p)))(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: ONNX Runtime's threads otherwise spin after each call, taking the CPU from the
    # server's own threads (Gradio's handlers, the next request) on a machine of two vCPUs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"pixels": pixels.float().contiguous().numpy()})[0]  # [B, D]
        return torch.from_numpy(out)

    return ImageEncoder("onnxruntime", encode, True)


def onnx_cache_path(cache_dir: Path, identity: str) -> Path:
    """Where the exported vision tower of the weights with this identity is cached."""
    import hashlib

    return Path(cache_dir) / f"visual-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.onnx"


def select(name: str, model: torch.nn.Module, resolution: int, cache_dir: Path, identity: str,
           exporter: Callable[[Path], None] | None = None) -> tuple[ImageEncoder, str]:
    """`choose` with a fixed probe input and the cache path for these weights; never raises."""
    probe = torch.linspace(-1.5, 1.5, 2 * 3 * resolution**2).reshape(2, 3, resolution, resolution)
    try:
        return choose(name, model, resolution, onnx_cache_path(cache_dir, identity), probe, exporter)
    except Refusal as exc:
        return eager_encoder(model), f"eager PyTorch ({exc})"


def parity(candidate: ImageEncoder, reference: ImageEncoder, probe: torch.Tensor) -> float:
    """Max abs difference between the two encoders' normalised features on `probe` `[B, 3, R, R]`."""
    return float((normalise(candidate.encode(probe)) - normalise(reference.encode(probe))).abs().max())


def choose(name: str, model: torch.nn.Module, resolution: int, cache_path: Path | None,
           probe: torch.Tensor, exporter: Callable[[Path], None] | None = None) -> tuple[ImageEncoder, str]:
    """The encoder for backend `name` ("auto", "eager", "onnxruntime", "bf16") and a sentence saying why.

    Exact backends other than eager are used only after they pass the parity check on `probe`;
    "auto" falls back to eager on any failure. A Refusal for an unknown name lists the names.
    """
    eager = eager_encoder(model)
    if name not in ("auto", *BACKENDS):
        raise Refusal("backend_unknown", repr(name), ", ".join(BACKENDS))
    if name == "eager":
        return eager, "eager PyTorch (asked for)"
    if name == "bf16":
        approx = bf16_encoder(model)
        return approx, f"bf16 autocast, approximate (asked for; differs from fp32 by {parity(approx, eager, probe):.1e})"
    on_cpu_fp32 = next(model.parameters()).device.type == "cpu" and model.dtype == torch.float32
    if not on_cpu_fp32 or cache_path is None:
        return eager, "eager PyTorch (ONNX Runtime is for fp32 on CPU)"
    try:
        candidate = onnx_encoder(model, resolution, cache_path, exporter=exporter)
        diff = parity(candidate, eager, probe)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional backend means: use eager
        log.warning("ONNX Runtime backend unavailable: %s", exc)
        return eager, f"eager PyTorch (ONNX Runtime failed: {str(exc).splitlines()[0][:120]})"
    if diff > PARITY_TOL:
        log.warning("ONNX Runtime failed the parity check (%.2e > %.0e); using eager", diff, PARITY_TOL)
        return eager, f"eager PyTorch (ONNX Runtime parity {diff:.1e} > {PARITY_TOL:.0e})"
    return candidate, f"ONNX Runtime fp32 (parity with eager {diff:.1e} <= {PARITY_TOL:.0e})"
