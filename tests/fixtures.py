"""Things the tests make themselves: tiny CLIP checkpoints, a CIFAR-100 in the real on-disk format,
a loopback HTTP server standing in for weight hosts, and the notebook's reference computation."""

from __future__ import annotations

import hashlib
import http.server
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from clipdemo.core.model import PRESETS, build_random
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


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, bytes | int] = {}
    hits: list[str] = []

    def do_GET(self, head: bool = False):  # noqa: N802 (http.server's name)
        self.hits.append(("HEAD " if head else "") + self.path)
        body = self.routes.get(self.path, 404)
        if isinstance(body, int):
            self.send_error(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if "/resolve/" in self.path:  # what hf_hub_download reads from the Hub: the commit and the file's hash
            self.send_header("X-Repo-Commit", self.path.split("/resolve/")[1].split("/")[0])
            self.send_header("ETag", '"' + hashlib.sha256(body).hexdigest() + '"')
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        self.do_GET(head=True)

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
