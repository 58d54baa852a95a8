"""Request bodies bounded before anything parses them: one ASGI middleware in front of every route.

Gradio parses a JSON body on the server's event loop, and nothing in it caps a body (its `max_file_size` covers
uploads only), so a 95 MB body of twenty million labels held the loop for seconds and took gigabytes. Here each
body is refused, with a sentence, before it reaches a route when:
- it is larger than its route's cap (the `Content-Length` alone refuses it unread; a body without one is
  counted as it arrives): uploads (multipart) may carry a full batch of images; the routes that take images
  inline as base64 data URLs (the queue, the REST calls, MCP) one largest image and a margin; every other route
  a few MB;
- a JSON body holds more than MAX_BODY_ITEMS values, counted by their separators (`,` `[` `{`) in one pass
  over the bytes, which takes milliseconds: the most any endpoint takes is 500 labels and 64 images, and base64
  has no separators, so only a hostile body comes near.
Refusals are HTTP 413 with `{"error": sentence}`; on the MCP paths a JSON-RPC error, which MCP clients show.
"""

from __future__ import annotations

import json
import math

from ..core.labels import MAX_LABELS
from ..io.images import MAX_BYTES
from ..tasks.classify import MAX_BATCH

__all__ = ["BodyCap", "cap_for", "MAX_BODY_ITEMS", "DATA_URL_CAP", "UPLOAD_CAP", "SMALL_CAP", "DATA_ROUTES"]

MiB = 2**20
# The largest image a visitor may send, as a base64 data URL (4 characters per 3 bytes), and 1 MiB for the rest
# of the request (labels, templates, the JSON around them).
DATA_URL_CAP = 4 * math.ceil(MAX_BYTES / 3) + MiB
UPLOAD_CAP = MAX_BATCH * MAX_BYTES + MiB  # one request may upload a whole batch; each file also has its own cap
SMALL_CAP = 4 * MiB  # anything else (cancel, reset, component updates, a login)
MAX_BODY_ITEMS = 100_000  # values in one JSON body (500 labels of 200 characters, commas and all, fit)
# The routes that take images inline (data URLs): the queue, the REST calls and MCP, under Gradio's API prefix.
MCP_PREFIX = "/gradio_api/mcp"  # every MCP route (`clipdemo.ui.mcp.MCP_ROUTES`, and any transport added later)
DATA_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/", MCP_PREFIX)


def cap_for(path: str, content_type: str) -> int:
    """The most bytes a request body to `path` with `content_type` may have."""
    if content_type.startswith("multipart/"):
        return UPLOAD_CAP
    return DATA_URL_CAP if path.startswith(DATA_ROUTES) else SMALL_CAP


def _items(body: bytes) -> int:
    """How many values a JSON body holds, at most (every separator counted, those inside strings too)."""
    return body.count(b",") + body.count(b"[") + body.count(b"{")


class BodyCap:
    """ASGI middleware: refuse an over-large or over-full request body before the app reads it (see the module)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, content_type = scope["path"], headers.get("content-type", "")
        cap = cap_for(path, content_type)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _refuse(send, path, _too_large(int(declared), cap))
            return
        if content_type.startswith("multipart/"):  # streamed to disk by Gradio, each file under its own cap
            await self.app(scope, _capped(receive, cap), send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > cap:
                await _refuse(send, path, _too_large(len(body), cap, more))
                return
        if (n := _items(body)) > MAX_BODY_ITEMS:
            await _refuse(send, path, f"This request holds about {n:,} values; no endpoint takes more than "
                                      f"{MAX_BODY_ITEMS:,} (at most {MAX_LABELS} labels and {MAX_BATCH} images).")
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _too_large(size: int, cap: int, more: bool = False) -> str:
    what = f"over {size / MiB:,.1f} MB" if more else f"{size / MiB:,.1f} MB"
    return (f"This request's body is {what}; the limit here is {cap / MiB:,.1f} MB. Send a large image as a file "
            f"upload, and many images in several requests.")


def _replay(body: bytes, receive):
    """A `receive` that hands the app the body already read, once, then the client's own messages (a streamed
    answer listens there for the client leaving)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _capped(receive, cap: int):
    """A `receive` that stops a streamed body (no Content-Length) once it passes `cap` bytes."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                return {"type": "http.disconnect"}
        return message

    return wrapped


async def _refuse(send, path: str, sentence: str) -> None:
    if path.startswith(MCP_PREFIX):  # what an MCP client reads: a JSON-RPC error with the sentence
        payload = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": sentence}}
    else:
        payload = {"error": sentence}
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
