"""Starting the real Gradio app on loopback for tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager

from clipdemo.runtime import Runtime
from clipdemo.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(runtime: Runtime):
    """Serve `build_app(runtime)` with the production launch settings; yields the base URL."""
    from clipdemo.ui import build_app, launch_kwargs, queue_kwargs

    demo = build_app(runtime)
    demo.queue(**queue_kwargs())
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True,
                **launch_kwargs())
    try:
        yield demo.local_url.rstrip("/"), demo
    finally:
        demo.close()


def runtime_for(loaded=None, data_root=None, weights="random:tiny", tmp=None) -> Runtime:
    settings = Settings(weights=weights, cache_dir=(tmp or data_root), data_root=data_root, allow_download=False)
    return Runtime(settings, loaded=loaded)
