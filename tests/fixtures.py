"""Things the tests make themselves: tiny CLIP checkpoints, a CIFAR-100 in the real on-disk format,
a loopback HTTP server standing in for weight hosts, and the notebook's reference computation."""

from __future__ import annotations

import hashlib
import http.server
import pickle
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from clipdemo.model import PRESETS, build_random
from clipdemo.presets import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES

TINY_SEED = 1


def write_tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """A tiny CLIP saved two ways: TorchScript (the official file's format) and a plain state dict."""
    import clip

    folder.mkdir(parents=True, exist_ok=True)
    model = build_random(PRESETS["tiny"], TINY_SEED)
    image = torch.randn(1, 3, 32, 32)
    text = clip.tokenize(["a photo of a cat"])
    traced = torch.jit.trace(model, (image, text), check_trace=False)
    paths = {"jit": folder / "tiny-jit.pt", "state_dict": folder / "tiny-state.pt"}
    torch.jit.save(traced, str(paths["jit"]))
    torch.save(model.state_dict(), paths["state_dict"])
    return paths


def write_cifar100(root: Path, n_test: int = 10_000, n_train: int = 100, seed: int = 0) -> dict[str, str]:
    """CIFAR-100 in torchvision's on-disk format under `root/cifar-100-python`; returns md5 per file.

    Image i is class `(i * 37 + 43) % 100` (so index 0 is a lion, like nothing real); index 15 is class 43,
    'lion', as in the notebook. Pixels are seeded noise over a class-coloured background.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str, offset: int) -> dict:
        fine = [((i + offset) * 37 + 43 - 15 * 37) % 100 for i in range(n)]
        base = np.array([[(c * 53) % 256, (c * 97) % 256, (c * 151) % 256] for c in fine], dtype=np.int16)
        noise = rng.integers(-40, 40, size=(n, 3, 1024), dtype=np.int16)
        data = np.clip(base[:, :, None] + noise, 0, 255).astype(np.uint8).reshape(n, 3072)  # [N, 3*32*32] CHW
        return {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": name,
                "fine_labels": fine, "coarse_labels": [c % 20 for c in fine], "data": data}

    files = {
        "test": batch(n_test, "testing batch 1 of 1", 0),
        "train": batch(n_train, "training batch 1 of 1", 0),
        "meta": {"fine_label_names": list(CIFAR100_CLASSES),
                 "coarse_label_names": [c.replace(" ", "_") for c in CIFAR100_SUPERCLASSES]},
    }
    md5 = {}
    for name, obj in files.items():
        blob = pickle.dumps(obj, protocol=2)
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    return md5


@contextmanager
def cifar_checksums(md5: dict[str, str]):
    """Point torchvision's CIFAR-100 integrity check at the fixture's md5 sums (the check itself still runs)."""
    from torchvision.datasets import CIFAR100

    mp = __import__("pytest").MonkeyPatch()
    mp.setattr(CIFAR100, "train_list", [["train", md5["train"]]])
    mp.setattr(CIFAR100, "test_list", [["test", md5["test"]]])
    mp.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5["meta"]})
    try:
        yield
    finally:
        mp.undo()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes | int] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.hits.append(self.path)
        body = self.routes.get(self.path, 404)
        if isinstance(body, int):
            self.send_error(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@contextmanager
def loopback_server(routes: dict[str, bytes | int]):
    """Serve `routes` (path -> bytes, or an HTTP error code) on 127.0.0.1; yields (base_url, hits)."""
    handler = type("Handler", (_Handler,), {"routes": dict(routes), "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.hits
    finally:
        server.shutdown()
        server.server_close()


def notebook_top5(model, preprocess, image, classes, device="cpu"):
    """The classic CLIP notebook's code, as written there (in-place normalisation and all)."""
    import clip

    image_input = preprocess(image).unsqueeze(0).to(device)
    text_inputs = torch.cat([clip.tokenize(f"a photo of a {c}") for c in classes]).to(device)
    with torch.no_grad():
        image_features = model.encode_image(image_input)
        text_features = model.encode_text(text_inputs)
    image_features /= image_features.norm(dim=-1, keepdim=True)
    text_features /= text_features.norm(dim=-1, keepdim=True)
    similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)
    values, indices = similarity[0].topk(5)
    return [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())], similarity[0]
