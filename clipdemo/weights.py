"""Where CLIP weights come from, and how they are fetched: sources as data, verified atomic downloads.

Holds: the `WEIGHT_SOURCES` registry (name -> ordered mirrors), `KNOWN_RELEASES` (files known by their
SHA-256), `WeightsInfo` (where loaded weights came from, and what is known of them), `fetch()` which
walks a source's mirrors until one yields a verified file in the cache, and `sha256_file()`. Holds no model code (see
`clipdemo.model`), and nothing here touches the network at import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .progress import ProgressFn

__all__ = ["Mirror", "WeightSource", "WEIGHT_SOURCES", "KNOWN_RELEASES", "known_release", "WeightsError",
           "WeightsInfo", "fetch", "sha256_file"]

log = logging.getLogger(__name__)

_VIT_B_32_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


class WeightsError(RuntimeError):
    """Weights could not be obtained or loaded; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class Mirror:
    """One place a checkpoint can be downloaded from."""

    url: str
    filename: str  # name in the cache directory; mirrors with the same bytes share it
    sha256: str | None  # None where no checksum is published; the file's hash is then pinned on first download
    format: str  # "jit" (OpenAI's TorchScript archive) or "state_dict" (a plain tensor dict)


@dataclass(frozen=True)
class WeightSource:
    """A named model whose checkpoint can be fetched from any of its mirrors, tried in order."""

    name: str
    mirrors: tuple[Mirror, ...]


WEIGHT_SOURCES: dict[str, WeightSource] = {
    "ViT-B/32": WeightSource(
        "ViT-B/32",
        (
            # The URL `clip.load` uses; reported dead at times (openai/CLIP#516).
            Mirror(f"https://openaipublic.azureedge.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt",
                   "ViT-B-32.pt", _VIT_B_32_SHA, "jit"),
            # The same file on the blob-storage host behind that CDN.
            Mirror(f"https://openaipublic.blob.core.windows.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt",
                   "ViT-B-32.pt", _VIT_B_32_SHA, "jit"),
            # OpenAI's weights as open_clip publishes them on the Hugging Face Hub (same tensor names).
            Mirror("https://huggingface.co/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_pytorch_model.bin",
                   "ViT-B-32-openai-open_clip.bin", None, "state_dict"),
        ),
    ),
}


# Checkpoint files known by their SHA-256: only these are labelled as what they are (and verified).
KNOWN_RELEASES: dict[str, str] = {
    _VIT_B_32_SHA: "OpenAI ViT-B/32",  # the TorchScript archive `clip.load` downloads (its URL holds the hash)
}


def known_release(sha256: str | None) -> str | None:
    """The release a file with this SHA-256 is, or None when it is not a known one."""
    return KNOWN_RELEASES.get(sha256 or "")


@dataclass(frozen=True)
class WeightsInfo:
    """Where the loaded weights came from."""

    name: str  # "ViT-B/32", "random", or the checkpoint file name
    origin: str  # URL, path, or "seeded random init (seed=0)"
    sha256: str | None  # of the checkpoint file; None for random weights
    trained: bool  # False only for random weights; a file's training is known only when it is `verified`
    release: str | None = None  # the known release this file's SHA-256 is (weights.KNOWN_RELEASES), if any

    @property
    def verified(self) -> bool:
        """True only for a file whose SHA-256 is a known release: only then do published figures apply."""
        return self.release is not None

    @property
    def identity(self) -> str:
        """A stable key for caches of anything computed from these weights."""
        return f"sha256:{self.sha256}" if self.sha256 else f"{self.name}:{self.origin}"

    @property
    def label(self) -> str:
        """One line for status bars and CLI headers: only what is known about the weights."""
        if not self.trained:
            return f"{self.name}: untrained random weights - predictions are meaningless"
        if self.verified:
            return f"{self.release} (SHA-256 verified)"
        return f"unverified checkpoint {self.name}, SHA-256 {(self.sha256 or '?')[:12]}…"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the file at `path`, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _pinned_sha(path: Path) -> str | None:
    pin = path.with_name(path.name + ".sha256")
    return pin.read_text().strip() if pin.is_file() else None


def _cached(mirror: Mirror, cache_dir: Path) -> Path | None:
    """The cached file for `mirror` if present and verified, else None (a bad file is removed)."""
    path = cache_dir / mirror.filename
    if not path.is_file():
        return None
    expected = mirror.sha256 or _pinned_sha(path)
    if expected is None:
        return None
    if sha256_file(path) == expected:
        return path
    log.warning("cached %s does not match its SHA-256; removing it", path)
    path.unlink(missing_ok=True)
    return None


def _download(mirror: Mirror, cache_dir: Path, timeout: float, progress: ProgressFn | None) -> Path:
    """Stream `mirror.url` into the cache through a temp file; verify, then rename into place."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / mirror.filename
    fd, tmp_name = tempfile.mkstemp(prefix=mirror.filename + ".", suffix=".part", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(mirror.url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while block := resp.read(1 << 20):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(done, total, f"downloading {mirror.filename}")
        if total and done != total:
            raise WeightsError(f"download ended early ({done} of {total} bytes)")
        digest = h.hexdigest()
        if mirror.sha256 and digest != mirror.sha256:
            raise WeightsError(f"SHA-256 mismatch (got {digest[:12]}…, expected {mirror.sha256[:12]}…)")
        os.replace(tmp, dest)
        if mirror.sha256 is None:
            dest.with_name(dest.name + ".sha256").write_text(digest + "\n")
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch(source: WeightSource, cache_dir: Path, *, allow_download: bool = True, timeout: float = 30.0,
          progress: ProgressFn | None = None) -> tuple[Path, Mirror]:
    """Return a verified local file for `source` and the mirror it came from.

    A verified cached file is used without any network access; otherwise each mirror is tried in
    order. Raises WeightsError listing every attempt when none yields a verified file.
    """
    for mirror in source.mirrors:
        if (path := _cached(mirror, cache_dir)) is not None:
            log.info("using cached weights %s", path)
            return path, mirror
    tried: list[str] = []
    if allow_download:
        for mirror in source.mirrors:
            try:
                log.info("downloading %s", mirror.url)
                return _download(mirror, cache_dir, timeout, progress), mirror
            except (OSError, urllib.error.URLError, WeightsError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                log.warning("download of %s failed: %s", mirror.url, reason)
                tried.append(f"{mirror.url} ({reason})")
    else:
        tried.append("downloads are disabled (CLIPDEMO_DOWNLOAD=0)")
    raise WeightsError(
        f"Could not get the {source.name} weights. Tried: cache {cache_dir}; "
        + "; ".join(tried)
        + f". Fix: put the checkpoint at {cache_dir / source.mirrors[0].filename}, or set "
        "CLIPDEMO_WEIGHTS=/path/to/checkpoint.pt, or CLIPDEMO_WEIGHTS=random for untrained weights."
    )
