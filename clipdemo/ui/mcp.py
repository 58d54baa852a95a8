"""The MCP server: the typed endpoints as MCP tools that answer in JSON, at /gradio_api/mcp/ (streamable HTTP) and
/gradio_api/mcp/sse (SSE, where Hugging Face's docs and clients connect), with the tools at /gradio_api/mcp/schema.

Why not Gradio's own (`launch(mcp_server=True)`): in Gradio 6.31 a tool's answer is `str(output)`, a Python repr
that JSON parsers reject, with no output schema. So the `mcp` SDK's low-level server serves the same functions with
input and output schemas. Arguments are checked in the tool's worker thread, never on the event loop (the SDK's own
validation is off). Starlette does not run a mounted app's lifespan, so `lifespan` mounts it as the server starts.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
import re
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import gradio as gr
import jsonschema
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import TypeAdapter
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .bodycap import DATA_URL_CAP, MCP_PREFIX

__all__ = ["McpServer", "MCP_ROUTES"]

log = logging.getLogger(__name__)
MCP_ROUTES = (MCP_PREFIX, f"{MCP_PREFIX}/")  # where Gradio's own server was, so client configs stay valid
SSE, MESSAGES, SCHEMA = f"{MCP_PREFIX}/sse", f"{MCP_PREFIX}/messages/", f"{MCP_PREFIX}/schema"  # Gradio's paths too


def _arg_docs(doc: str) -> dict[str, str]:
    """The `Args:` section of a Google-style docstring: {name: its description, lines joined}."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, str] = {}
    inside, name = False, None
    for line in lines:
        if line.strip() in ("Args:", "Arguments:"):
            inside = True
            continue
        if inside and line and not line.startswith(" "):  # the next section
            break
        if inside and (m := re.match(r"^\s{2,}(\w+):\s*(.*)$", line)) and len(line) - len(line.lstrip()) <= 4:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif inside and name and line.strip():
            out[name] += " " + line.strip()
    return out


def _description(doc: str) -> str:
    """The docstring without its `Args:` section (the parameters are described in the input schema)."""
    text = inspect.cleandoc(doc or "")
    return re.sub(r"\nArgs:\n(?:[ \t]+.*\n?|\n)*", "\n", text).strip()


def _schemas(fn: Callable) -> tuple[dict, dict]:
    """(input schema, output schema) of a typed function."""
    hints = typing.get_type_hints(fn)
    docs = _arg_docs(fn.__doc__ or "")
    properties, required = {}, []
    for name, param in inspect.signature(fn).parameters.items():
        schema = TypeAdapter(hints[name]).json_schema()
        if name in docs:
            schema["description"] = docs[name]
        if param.default is inspect.Parameter.empty:
            required.append(name)
        else:
            schema["default"] = param.default
        properties[name] = schema
    out = TypeAdapter(hints["return"]).json_schema()
    if out.get("type") != "object":  # structured content is an object: anything else goes under "result"
        out = {"type": "object", "properties": {"result": out}, "required": ["result"]}
    return {"type": "object", "properties": properties, "required": required}, out


class McpServer:
    """Typed functions (the API's endpoints) served as MCP tools with JSON answers."""

    def __init__(self, functions: list[Callable]):
        self.functions = {fn.__name__: fn for fn in functions}
        self._schemas = {name: _schemas(fn) for name, fn in self.functions.items()}  # name -> (input, output)

    def tools(self) -> list[types.Tool]:
        """Each function as a tool: its name, its docstring, and the schemas of its arguments and answer."""
        out = []
        for name, fn in self.functions.items():
            inputs, outputs = self._schemas[name]
            out.append(types.Tool(name=name, description=_description(fn.__doc__ or ""), inputSchema=inputs,
                                  outputSchema=outputs))
        return out

    def schema(self) -> list[dict]:
        """The tools as Gradio's /gradio_api/mcp/schema lists them (what the Hub reads without an MCP session)."""
        return [{"name": t.name, "description": t.description, "inputSchema": t.inputSchema,
                 "meta": {"file_data_present": False, "mcp_type": "tool", "endpoint_name": t.name}}
                for t in self.tools()]

    async def call(self, name: str, arguments: dict) -> types.CallToolResult | tuple[list, dict]:
        """Check the arguments and run one tool, both in a worker thread (the checks walk what a caller sent, the
        model calls block): JSON text and structured content, or an error result with the API's sentence."""
        fn = self.functions.get(name)
        if fn is None:
            return _error(f"Unknown tool {name!r}; the tools are: {', '.join(self.functions)}.")
        schema = self._schemas[name][0]

        def run():
            if (refused := _check_arguments(name, schema, arguments)) is not None:
                return refused
            return fn(**arguments)
        try:
            result = await anyio.to_thread.run_sync(run)
            if isinstance(result, types.CallToolResult):
                return result
        except gr.Error as exc:  # the API's own sentence (escaped for a toast there: plain text here)
            return _error(html.unescape(str(exc.message)))
        except Exception:  # noqa: BLE001 - never a traceback to a caller
            log.exception("MCP tool %s failed", name)
            return _error("The tool failed unexpectedly; the details are in the Space's logs.")
        structured = result if isinstance(result, dict) else {"result": result}
        return [types.TextContent(type="text", text=json.dumps(result, ensure_ascii=False))], structured

    def _server(self) -> Server:
        server = Server("clipdemo")
        tools = self.tools()

        @server.list_tools()
        async def list_tools() -> list[types.Tool]:
            return tools

        @server.call_tool(validate_input=False)  # validated in `call`, off the event loop, after the size checks
        async def call_tool(name: str, arguments: dict):
            return await self.call(name, arguments)

        return server

    def lifespan(self, app) -> typing.AsyncContextManager:
        """For `launch(app_kwargs={"lifespan": ...})`: mount the tools on Gradio's app and run their sessions."""
        return self._mounted(app)

    @asynccontextmanager
    async def _mounted(self, app) -> AsyncIterator[None]:
        server = self._server()
        manager = StreamableHTTPSessionManager(app=server, json_response=False, stateless=True)
        sse = SseServerTransport(MESSAGES)  # tells each client to post its messages there, with its session id
        listed = self.schema()

        async def endpoint(scope, receive, send) -> None:
            await manager.handle_request(scope, receive, send)

        async def stream(scope, receive, send) -> None:  # one SSE session: open as long as the client listens
            async with sse.connect_sse(scope, receive, send) as (read, write):
                await server.run(read, write, server.create_initialization_options())

        async def schema(request) -> JSONResponse:
            return JSONResponse(listed)

        app.router.routes[0:0] = [*(Route(path, endpoint=_Asgi(endpoint)) for path in MCP_ROUTES),
                                  Route(SSE, endpoint=_Asgi(stream), methods=["GET"]),
                                  Mount(MESSAGES, app=sse.handle_post_message),  # the SSE clients' posts
                                  Route(SCHEMA, endpoint=schema, methods=["GET"])]
        async with manager.run():
            yield


class _Asgi:
    """An ASGI callable Starlette's `Route` serves as an app (every method), not as a request handler."""

    def __init__(self, fn):
        self.fn = fn

    async def __call__(self, scope, receive, send) -> None:
        await self.fn(scope, receive, send)


MAX_ARGUMENT_ITEMS = 1000  # items in one list or object argument: twice the most labels a tool takes
MAX_ARGUMENT_CHARS = DATA_URL_CAP  # one string argument: the largest image as a data URL


def _size(value) -> int:
    """Items of a list or object, characters of a string, and 1 for anything else."""
    return len(value) if isinstance(value, (list, dict, str)) else 1


def _check_arguments(name: str, schema: dict, arguments: dict) -> types.CallToolResult | None:
    """An error naming the argument that is unknown, missing, too large or of the wrong type, or None when all are
    fine. Sizes are checked first, each by its length alone, so the schema check after them walks little."""
    known = schema["properties"]
    if unknown := [a for a in arguments if a not in known]:
        return _error(f"Unknown argument {unknown[0][:40]!r} for {name}; it takes: {', '.join(known)}.")
    if missing := [a for a in schema["required"] if a not in arguments]:
        return _error(f"{name} needs the argument {missing[0]!r}.")
    for arg, value in arguments.items():
        limit = MAX_ARGUMENT_CHARS if isinstance(value, str) else MAX_ARGUMENT_ITEMS
        inner = (value.values() if isinstance(value, dict) else value) if isinstance(value, (list, dict)) else ()
        if (size := max([_size(value), *(_size(v) for v in inner)])) > limit:  # the argument, or one of its items
            return _error(f"The argument {arg!r} is too large ({size:,} "
                          f"{'characters' if isinstance(value, str) else 'items'}); at most {limit:,}.")
    try:
        jsonschema.validate(instance=arguments, schema=schema)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
        return _error(f"The argument {where!r} is not valid: {exc.message[:200]}")
    return None


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(isError=True, content=[types.TextContent(type="text", text=text)])
