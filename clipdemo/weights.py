"""Where CLIP weights come from, and how they are fetched: sources as data, verified atomic downloads.

Holds: the `WEIGHT_SOURCES` registry (name -> ordered mirrors, each with a pinned SHA-256, Hub mirrors at
a pinned revision), `KNOWN_RELEASES` (files known by their SHA-256), `WeightsInfo` (where loaded weights
came from, and what is known of them), `fetch()` which walks a source's mirrors until one yields a
verified file (the Hugging Face cache first, which the Space's `preload_from_hub` fills at build time),
and `sha256_file()`. Holds no model code (see
`clipdemo.model`), and nothing here touches the network at import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .progress import ProgressFn

__all__ = ["Mirror", "WeightSource", "WEIGHT_SOURCES", "KNOWN_RELEASES", "known_release", "WeightsError",
           "WeightsInfo", "fetch", "sha256_file", "default_hf_cache", "PROBE_TIMEOUT_S"]

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0  # one TCP connect per host before a download: no network fails in seconds, not minutes

_VIT_B_32_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


class WeightsError(RuntimeError):
    """Weights could not be obtained or loaded; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class Mirror:
    """One place a checkpoint can be fetched from: a plain HTTPS URL, or a file of a Hugging Face Hub repo at a
    pinned revision (fetched with `huggingface_hub.hf_hub_download`, into the cache `preload_from_hub` fills).
    Every mirror names the SHA-256 of its bytes: a file that does not hash to it is never used."""

    filename: str  # the file's name in the repo, or in the cache directory for a URL mirror
    sha256: str
    format: str  # "jit" (OpenAI's TorchScript archive), "state_dict" (torch.save) or "safetensors"
    url: str | None = None  # a plain HTTPS host
    repo_id: str | None = None  # a Hugging Face Hub model repo ...
    revision: str | None = None  # ... at this commit (40 hex digits: a pin, never a branch)
    size: int | None = None  # bytes, where published
    endpoint: str | None = None  # the Hub's address (None: huggingface.co, or HF_ENDPOINT); tests pass a loopback

    def __post_init__(self):
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256 or ""):
            raise ValueError(f"Mirror {self.filename}: a SHA-256 (64 hex digits) is required, not {self.sha256!r}.")
        if (self.url is None) == (self.repo_id is None):
            raise ValueError(f"Mirror {self.filename}: give a url or a repo_id, not both or neither.")
        if self.repo_id is not None and not re.fullmatch(r"[0-9a-f]{40}", self.revision or ""):
            raise ValueError(f"Mirror {self.filename}: a Hub mirror needs a pinned revision (a 40-hex commit).")
        if self.format not in ("jit", "state_dict", "safetensors"):
            raise ValueError(f"Mirror {self.filename}: unknown format {self.format!r}.")

    @property
    def where(self) -> str:
        """Where it is, for messages and `WeightsInfo.origin`."""
        if self.url is not None:
            return self.url
        return f"{self.endpoint or 'https://huggingface.co'}/{self.repo_id}@{self.revision[:7]}/{self.filename}"


@dataclass(frozen=True)
class WeightSource:
    """A named model whose checkpoint can be fetched from any of its mirrors, tried in order."""

    name: str
    mirrors: tuple[Mirror, ...]


_HF_REPO, _HF_REV = "timm/vit_base_patch32_clip_224.openai", "a6f597a30f7b82c51704746581f9a4e41421e878"
_HF_SAFETENSORS_SHA = "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31"
_HF_BIN_SHA = "9ecdaef325b20e7283dc6a32f92aa638d100899e4f084c2462d3832eeea0b26e"

# The order, from what is known today (2026-11):
# 1. open_clip's safetensors file on the Hub, at a pinned commit. On the Space it is preloaded at build time
#    (`preload_from_hub` in README.md), so it is found in the local Hugging Face cache with no network at all;
#    elsewhere the Hub is the host that answers today; and safetensors holds no pickle.
# 2. The same weights as open_clip's .bin at the same commit (loaded with weights_only=True).
# 3. OpenAI's blob-storage host, the origin behind the CDN below (the TorchScript archive clip.load uses).
# 4. OpenAI's CDN, the URL in `clip.clip._MODELS`: last, since users report it answering 404 (openai/CLIP#516).
# Sizes and hashes of the Hub files come from third-party records (issue #13); they are data, checked on use.
WEIGHT_SOURCES: dict[str, WeightSource] = {
    "ViT-B/32": WeightSource(
        "ViT-B/32",
        (
            Mirror("open_clip_model.safetensors", _HF_SAFETENSORS_SHA, "safetensors", repo_id=_HF_REPO,
                   revision=_HF_REV, size=605_143_284),
            Mirror("open_clip_pytorch_model.bin", _HF_BIN_SHA, "state_dict", repo_id=_HF_REPO, revision=_HF_REV,
                   size=605_225_782),
            Mirror("ViT-B-32.pt", _VIT_B_32_SHA, "jit",
                   url=f"https://openaipublic.blob.core.windows.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt"),
            Mirror("ViT-B-32.pt", _VIT_B_32_SHA, "jit",
                   url=f"https://openaipublic.azureedge.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt"),
        ),
    ),
}


# Checkpoint files known by their SHA-256: only these are labelled as what they are (and verified).
KNOWN_RELEASES: dict[str, str] = {
    _VIT_B_32_SHA: "OpenAI ViT-B/32",  # the TorchScript archive `clip.load` downloads (its URL holds the hash)
    _HF_SAFETENSORS_SHA: "OpenAI ViT-B/32",  # the same weights, as open_clip publishes them (safetensors)
    _HF_BIN_SHA: "OpenAI ViT-B/32",  # ... and as its torch.save file
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


def _verified(path: Path, mirror: Mirror) -> bool:
    """True when the file at `path` hashes to the mirror's SHA-256; a file that does not is removed (with
    the Hub cache's link to it)."""
    if sha256_file(path) == mirror.sha256:
        return True
    log.warning("%s does not match the pinned SHA-256 of %s; removing it", path, mirror.where)
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
    return False


def _cached(mirror: Mirror, cache_dir: Path, hf_cache: Path) -> Path | None:
    """The cached file for `mirror` if present and verified, else None (a bad file is removed). No network."""
    if mirror.repo_id is not None:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(mirror.repo_id, mirror.filename, revision=mirror.revision,
                                        cache_dir=hf_cache, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            return None
    else:
        path = cache_dir / mirror.filename
        if not path.is_file():
            return None
    return path if _verified(path, mirror) else None


def _reachable(url: str, timeout: float, probed: dict[tuple, str | None]) -> str | None:
    """None when a TCP connection to `url`'s host opens within `timeout` s, else why not. One quick probe per
    host and fetch (`probed` remembers), so that a machine without network fails in seconds: hf_hub_download
    alone retries for ~25 s."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    if host not in probed:
        try:
            socket.create_connection(host, timeout=timeout).close()
            probed[host] = None
        except OSError as exc:  # refused, no route, no DNS, timed out
            probed[host] = f"host unreachable: {exc.strerror or exc}"
    return probed[host]


def _progress_bar(progress: ProgressFn | None, what: str):
    """A tqdm class that reports to `progress` (for hf_hub_download), or None."""
    if progress is None:
        return None
    from tqdm.auto import tqdm

    class Report(tqdm):
        def update(self, n=1):
            out = super().update(n)
            progress(int(self.n), int(self.total or 0), what)
            return out

    return Report


def _hub_download(mirror: Mirror, hf_cache: Path, timeout: float, progress: ProgressFn | None,
                  probed: dict) -> Path:
    """Fetch a Hub mirror into the Hugging Face cache (resumable; shared with `preload_from_hub`); verify."""
    from huggingface_hub import hf_hub_download

    endpoint = mirror.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    if (why := _reachable(endpoint, min(timeout, PROBE_TIMEOUT_S), probed)) is not None:
        raise WeightsError(why)
    try:
        path = Path(hf_hub_download(mirror.repo_id, mirror.filename, revision=mirror.revision, cache_dir=hf_cache,
                                    endpoint=mirror.endpoint, etag_timeout=timeout,
                                    tqdm_class=_progress_bar(progress, f"downloading {mirror.filename}")))
    except Exception as exc:  # huggingface_hub raises its own types (HTTP, offline mode, missing entry)
        raise WeightsError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
    if not _verified(path, mirror):
        raise WeightsError(f"SHA-256 mismatch (expected {mirror.sha256[:12]}…)")
    return path


def _download(mirror: Mirror, cache_dir: Path, timeout: float, progress: ProgressFn | None, probed: dict) -> Path:
    """Stream `mirror.url` into the cache through a temp file; verify, then rename into place."""
    if (why := _reachable(mirror.url, min(timeout, PROBE_TIMEOUT_S), probed)) is not None:
        raise WeightsError(why)
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
        if digest != mirror.sha256:
            raise WeightsError(f"SHA-256 mismatch (got {digest[:12]}…, expected {mirror.sha256[:12]}…)")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch(source: WeightSource, cache_dir: Path, *, hf_cache: Path | None = None, allow_download: bool = True,
          timeout: float = 30.0, progress: ProgressFn | None = None) -> tuple[Path, Mirror]:
    """Return a verified local file for `source` and the mirror it came from.

    A verified cached file (in `cache_dir`, or in the Hugging Face cache `hf_cache` for Hub mirrors) is
    used without any network access; otherwise each mirror is tried in order, each host first probed
    once (PROBE_TIMEOUT_S). Raises WeightsError listing every attempt when none yields a verified file.
    """
    hf_cache = hf_cache or default_hf_cache()
    for mirror in source.mirrors:
        if (path := _cached(mirror, cache_dir, hf_cache)) is not None:
            log.info("using cached weights %s", path)
            return path, mirror
    tried: list[str] = []
    probed: dict[tuple, str | None] = {}
    if allow_download:
        for mirror in source.mirrors:
            try:
                log.info("fetching %s", mirror.where)
                if mirror.repo_id is not None:
                    return _hub_download(mirror, hf_cache, timeout, progress, probed), mirror
                return _download(mirror, cache_dir, timeout, progress, probed), mirror
            except (OSError, urllib.error.URLError, WeightsError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                log.warning("fetching %s failed: %s", mirror.where, reason)
                tried.append(f"{mirror.where} ({reason})")
    else:
        tried.append("downloads are disabled (CLIPDEMO_DOWNLOAD=0)")
    raise WeightsError(
        f"Could not get the {source.name} weights. Tried: cache {cache_dir} and Hugging Face cache {hf_cache}; "
        + "; ".join(tried)
        + f". Fix: put the checkpoint at {cache_dir / source.mirrors[-1].filename}, or set "
        "CLIPDEMO_WEIGHTS=/path/to/checkpoint, or CLIPDEMO_WEIGHTS=random for untrained weights."
    )


def default_hf_cache() -> Path:
    """The Hugging Face hub cache, read when called (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub):
    where `preload_from_hub` puts files and `hf_hub_download` looks."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"
