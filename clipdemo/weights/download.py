"""Fetching weights: the mirror chain of a `WeightSource`, walked until one yields a verified file.

A verified cached file comes first (clipdemo's cache, or the Hugging Face cache the Space's `preload_from_hub` fills
at build time). A downloaded file is renamed into place only once verified, and a file that does not hash to its
mirror's pin is removed. Nothing here runs at import.
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

from dataclasses import dataclass, field

from ..core.model import WeightsError
from ..core.words import Progress, ProgressFn, Text
from .sources import Mirror, WeightSource, sha256_file

__all__ = ["Hub", "fetch", "PROBE_TIMEOUT_S"]

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0  # one TCP connect per host before a download: no network fails in seconds, not minutes


@dataclass(frozen=True)
class Hub:
    """The Hugging Face Hub as this process may use it (`clipdemo.serving.settings` reads HF's own variables)."""

    # what `preload_from_hub` fills; HOME is read when a Hub is made, never at import
    cache: Path = field(default_factory=lambda: Path("~/.cache/huggingface/hub").expanduser())
    endpoint: str = "https://huggingface.co"
    offline: bool = False  # HF_HUB_OFFLINE: the Hub must not be asked


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


def _progress_bar(progress: ProgressFn | None, what: Text):
    """A tqdm class that reports to `progress` (for hf_hub_download), or None."""
    if progress is None:
        return None
    from tqdm.auto import tqdm

    class Report(tqdm):
        def update(self, n=1):
            out = super().update(n)
            progress(Progress(int(self.n), int(self.total or 0), what))
            return out

    return Report


def _hub_download(mirror: Mirror, hub: Hub, timeout: float, progress: ProgressFn | None, probed: dict) -> Path:
    """Fetch a Hub mirror into the Hugging Face cache (resumable; shared with `preload_from_hub`); verify."""
    from huggingface_hub import hf_hub_download

    if hub.offline:
        raise _Failed("HF_HUB_OFFLINE is set: the Hub is not asked")
    endpoint = mirror.endpoint or hub.endpoint
    if (why := _reachable(endpoint, min(timeout, PROBE_TIMEOUT_S), probed)) is not None:
        raise _Failed(why)
    try:
        path = Path(hf_hub_download(mirror.repo_id, mirror.filename, revision=mirror.revision, cache_dir=hub.cache,
                                    endpoint=endpoint, etag_timeout=timeout,
                                    tqdm_class=_progress_bar(progress, Text("downloading", mirror.filename))))
    except Exception as exc:  # huggingface_hub raises its own types (HTTP, offline mode, missing entry)
        raise _Failed(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc
    if not _verified(path, mirror):
        raise _Failed(f"SHA-256 mismatch (expected {mirror.sha256[:12]}…)")
    return path


def _download(mirror: Mirror, cache_dir: Path, timeout: float, progress: ProgressFn | None, probed: dict) -> Path:
    """Stream `mirror.url` into the cache through a temp file; verify, then rename into place."""
    if (why := _reachable(mirror.url, min(timeout, PROBE_TIMEOUT_S), probed)) is not None:
        raise _Failed(why)
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
                    progress(Progress(done, total, Text("downloading", mirror.filename)))
        if total and done != total:
            raise _Failed(f"download ended early ({done} of {total} bytes)")
        digest = h.hexdigest()
        if digest != mirror.sha256:
            raise _Failed(f"SHA-256 mismatch (got {digest[:12]}…, expected {mirror.sha256[:12]}…)")
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def fetch(source: WeightSource, cache_dir: Path, *, hub: Hub | None = None, allow_download: bool = True,
          timeout: float = 30.0, progress: ProgressFn | None = None) -> tuple[Path, Mirror]:
    """Return a verified local file for `source` and the mirror it came from.

    A verified cached file (in `cache_dir`, or in the Hugging Face cache `hub.cache` for Hub mirrors) is
    used without any network access; otherwise each mirror is tried in order, each host first probed
    once (PROBE_TIMEOUT_S). Raises WeightsError listing every attempt when none yields a verified file.
    `hub` defaults to `Hub()`.
    """
    hub = hub or Hub()
    for mirror in source.mirrors:
        if (path := _cached(mirror, cache_dir, hub.cache)) is not None:
            log.info("using cached weights %s", path)
            return path, mirror
    tried: list[str] = []
    probed: dict[tuple, str | None] = {}
    if allow_download:
        for mirror in source.mirrors:
            try:
                log.info("fetching %s", mirror.where)
                if mirror.repo_id is not None:
                    return _hub_download(mirror, hub, timeout, progress, probed), mirror
                return _download(mirror, cache_dir, timeout, progress, probed), mirror
            except (OSError, urllib.error.URLError, _Failed, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                log.warning("fetching %s failed: %s", mirror.where, reason)
                tried.append(f"{mirror.where} ({reason})")
    else:
        tried.append("downloads are disabled (CLIPDEMO_DOWNLOAD=0)")
    raise WeightsError("weights_tried", source.name, cache_dir, hub.cache, "; ".join(tried),
                       cache_dir / source.mirrors[-1].filename)


class _Failed(Exception):
    """One mirror did not yield a verified file; the message is the reason `fetch` lists."""
