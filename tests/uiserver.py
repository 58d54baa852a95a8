"""Starting the real Gradio app on loopback for tests."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from clipdemo.serving.runtime import Runtime
from clipdemo.serving.settings import Settings


def _patient_url_ok(url: str) -> bool:
    """Gradio's launch checks that loopback answers with `networking.url_ok`, whose first 3 s timeout ends it (its
    try is outside its loop). A test's server shares one CPU with its model loading thread under `make test`'s
    workers, so here the same check waits up to a minute, as a visitor would."""
    import time

    import httpx
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if httpx.head(url, timeout=10, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


@contextmanager
def running_app(runtime: Runtime):
    """Serve `build_app(runtime)` with the production launch settings; yields the base URL. The port is Gradio's
    choice: it binds the first free one of its range, and tries the next if another process took it meanwhile
    (nothing here reserves a port and releases it for Gradio to take, which another process could take first)."""
    import gradio.networking

    from clipdemo.ui import build_app, launch_kwargs, queue_kwargs
    gradio.networking.url_ok = _patient_url_ok  # launch reads it from the module when it runs
    demo = build_app(runtime)
    demo.queue(**queue_kwargs())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                **launch_kwargs(runtime))
    try:
        yield demo.local_url.rstrip("/"), demo
    finally:
        demo.close()


def runtime_for(loaded=None, data_root=None, weights="random:tiny", tmp=None) -> Runtime:
    settings = Settings(weights=weights, cache_dir=(tmp or data_root), data_root=data_root, allow_download=False,
                        search_index=False)
    return Runtime(settings, loaded=loaded)


# `app.py` run as the main module, with torchvision's CIFAR-100 checksums pointed at a fixture's files
APP_WITH_CIFAR = """
import json, runpy, sys
from clipdemo.fakes import cifar_checksums
with cifar_checksums(json.loads(sys.argv[1])):
    runpy.run_path("app.py", run_name="__main__")
"""


@contextmanager
def app_process(env: dict[str, str], log: Path, timeout: float = 180.0, cifar_md5: dict[str, str] | None = None):
    """`python app.py` in a child process with `env` added; yields (its URL, the process) once the page is served. Gradio
    picks the port itself (binding until one is free) and prints it: nothing is reserved and then released. With
    `cifar_md5` (a fixture split's md5 per file), the app accepts that split as CIFAR-100."""
    import os
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    out = open(log, "w+", encoding="utf-8")
    import json

    command = [sys.executable, "app.py"] if cifar_md5 is None else [sys.executable, "-c", APP_WITH_CIFAR,
                                                                    json.dumps(cifar_md5)]
    proc = subprocess.Popen(command, cwd=root, stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False",
                                 "PYTHONUNBUFFERED": "1", "CLIPDEMO_SEARCH_INDEX": "0", **env})
    try:
        start = time.monotonic()
        while (url := _printed_url(log)) is None:
            if proc.poll() is not None:
                raise AssertionError(f"the app exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            if time.monotonic() - start > timeout:
                raise AssertionError(f"the app served no page within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


def _printed_url(log: Path) -> str | None:
    for line in log.read_text(encoding="utf-8").splitlines():
        if "Running on local URL:" in line:
            return line.split("Running on local URL:", 1)[1].strip().rstrip("/")
    return None


def built_page(runtime: Runtime):
    """The app's page laid out (not served): its tabs' handlers can be called as plain methods, and their
    results read by component (`out[page.predict.result]`), as Gradio's own tests do."""
    from clipdemo.ui.app import Page

    page = Page(runtime)
    page.build()
    return page


def no_progress(*args, **kwargs):
    """A handler's `progress` when it is called as a plain method."""
    return None


class Turkish:
    """A request whose browser asks for Turkish (what Gradio hands a handler as `gr.Request`)."""

    headers = {"accept-language": "tr-TR,tr;q=0.9"}
    cookies = {}
