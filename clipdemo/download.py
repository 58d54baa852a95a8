"""Fetching weights: the mirror chain of a `WeightSource`, walked until one yields a verified file.

Holds `fetch()` (a verified cached file first, in clipdemo's cache or in the Hugging Face cache that the
Space's `preload_from_hub` fills at build time; then each mirror in order: Hub mirrors through
`huggingface_hub.hf_hub_download`, URLs streamed to a temp file and renamed into place once verified)
and `PROBE_TIMEOUT_S`; where the Hugging Face cache is comes from `settings.hf_hub_cache`. A file that
does not hash to its mirror's pin is removed. Nothing here runs at import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .progress import ProgressFn
from .settings import hf_endpoint, hf_hub_cache, hf_offline
from .weights import Mirror, WeightsError, WeightSource, sha256_file

__all__ = ["fetch", "PROBE_TIMEOUT_S"]

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0  # one TCP connect per host before a download: no network fails in seconds, not minutes


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
    if parts.scheme in urllib.request.getproxies():
        return None  # behind a proxy only the proxy is reached directly: let the download itself try
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

    if hf_offline():
        raise WeightsError("HF_HUB_OFFLINE is set: the Hub is not asked")
    endpoint = mirror.endpoint or hf_endpoint()
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
    hf_cache = hf_cache or hf_hub_cache()
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
