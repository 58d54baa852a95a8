"""Things the tests make themselves: tiny CLIP checkpoints, a CIFAR-100 in the real on-disk format,
a loopback HTTP server standing in for weight hosts, and the notebook's reference computation."""

from __future__ import annotations

import hashlib
import http.server
import threading
from contextlib import contextmanager
from pathlib import Path

import torch

from clipdemo.core.model import PRESETS, ClipConfig, build_random
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


class Squares:
    """A tiny CLIP whose image tower was trained (300 steps of Adam) to tell a red square from a blue one anywhere
    on a 4x4 grid of 8x8 patches: `texts[0]` is "red", `texts[1]` "blue" (fixed unit vectors the image features
    learnt to match), `image(pos, colour)` a `[3, 32, 32]` input with the square at grid position `pos`."""

    RED, BLUE = torch.tensor([1.0, -0.5, -0.5]) * 1.5, torch.tensor([-0.5, -0.5, 1.0]) * 1.5

    def __init__(self, steps: int = 300):
        cfg = ClipConfig(embed_dim=16, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=8,
                         transformer_width=64, transformer_heads=1, transformer_layers=1)
        self.model = m = build_random(cfg, seed=0).float()
        self.g = g = torch.Generator().manual_seed(0)
        self.texts = torch.nn.functional.normalize(torch.randn(2, 16, generator=g), dim=-1)  # [2, 16]
        for p in m.parameters():
            p.requires_grad_(False)
        opt = torch.optim.Adam(list(m.visual.parameters()), lr=3e-3)
        for p in m.visual.parameters():
            p.requires_grad_(True)
        with torch.enable_grad():
            for _ in range(steps):
                y = torch.randint(0, 2, (64,), generator=g)
                pos = torch.randint(0, 16, (64,), generator=g)
                x = torch.stack([self.image(int(p), self.RED if int(c) == 0 else self.BLUE) for p, c in zip(pos, y)])
                f = torch.nn.functional.normalize(m.visual(x), dim=-1)
                loss = torch.nn.functional.cross_entropy(20 * f @ self.texts.T, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        for p in m.parameters():
            p.requires_grad_(False)
        self.loss = float(loss.detach())

    def image(self, pos: int, colour: torch.Tensor) -> torch.Tensor:
        x = 0.5 + 0.1 * torch.randn(3, 32, 32, generator=self.g)
        r, c = divmod(pos, 4)
        x[:, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = colour[:, None, None]
        return x


def write_tower_snapshot(folder: Path, config=None, seed: int = TINY_SEED) -> dict[str, Path]:
    """A random multilingual text tower in the Hub repo's layout (sentence-transformers' modules: DistilBERT,
    mean pooling, a dense layer without bias; a stand-in vocabulary of the real size): what the Hub serves, for
    the loading path and for sentence-transformers' own `encode`. Returns the files by the registry's roles."""
    import json

    from safetensors.torch import save_file

    from clipdemo.core.multilingual import TOWER_PRESETS, build_random as build_tower, standin_vocabulary

    config = config or TOWER_PRESETS["tiny"]
    tower = build_tower(config, seed)
    (folder / "1_Pooling").mkdir(parents=True, exist_ok=True)
    (folder / "2_Dense").mkdir(exist_ok=True)
    tower.bert.config.architectures = ["DistilBertModel"]
    tower.bert.config.to_json_file(folder / "config.json")
    save_file({k: v.contiguous() for k, v in tower.bert.state_dict().items()}, folder / "model.safetensors")
    save_file({"linear.weight": tower.dense.weight.detach().contiguous()}, folder / "2_Dense" / "model.safetensors")
    (folder / "vocab.txt").write_text("\n".join(standin_vocabulary(config.vocab_size)) + "\n", encoding="utf-8")
    files = {
        "tokenizer_config.json": {"do_lower_case": False, "model_max_length": 512,
                                  "tokenizer_class": "DistilBertTokenizer"},
        "special_tokens_map.json": {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                    "cls_token": "[CLS]", "mask_token": "[MASK]"},
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                         {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}],
        "sentence_bert_config.json": {"max_seq_length": config.max_tokens, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": config.dim, "pooling_mode_cls_token": False,
                                  "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False},
        "2_Dense/config.json": {"in_features": config.dim, "out_features": config.embed_dim, "bias": False,
                                "activation_function": "torch.nn.modules.linear.Identity"},
    }
    for name, value in files.items():
        (folder / name).write_text(json.dumps(value), encoding="utf-8")
    return {"bert": folder / "model.safetensors", "dense": folder / "2_Dense" / "model.safetensors",
            "vocab": folder / "vocab.txt"}
