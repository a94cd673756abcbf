"""The MCP server: the tool catalogue over the official ``mcp`` SDK (stdio or streamable HTTP).

A solve is awaited on the service's Solver thread (other tools run in a worker thread); each
refinement step becomes a progress notification (when the client asked for progress), a
client's cancellation cancels the call's token so the session stops before its next step, and
bad arguments come back as the SDK's tool error (``isError``) with the message that names the
argument. The server runs on asyncio (``anyio``'s default backend, as uvicorn does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
from typing import Any

import anyio
import mcp.types as types
from mcp.server import Server

from ._catalogue import Call, Catalogue, ToolInputError

SERVER_NAME = "sage"
TOKEN_ENV = "SAGE_API_TOKEN"


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _result(result: dict[str, Any]) -> types.CallToolResult:
    text = json.dumps(result, default=str)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)


def _put(send: Any, report: tuple) -> None:
    with contextlib.suppress(anyio.ClosedResourceError):  # a step reported after the call ended
        send.send_nowait(report)


async def _run(catalogue: Catalogue, name: str, arguments: Any, call: Call) -> dict[str, Any]:
    """The tool's result: awaited on the service's own thread when the tool offers that, else
    run in a worker thread (not abandoned on cancel: the thread sees the token and stops first)."""
    future = catalogue.submit(name, arguments, call)
    if future is None:
        return await anyio.to_thread.run_sync(catalogue.call, name, arguments, call)
    return await asyncio.wrap_future(future)


async def _forward_progress(ctx: Any, reports: Any) -> None:
    """Send the call's progress reports, in order; a no-op per report unless the client asked
    for progress (a token on JSON-RPC, a callback in process)."""
    async with reports:
        async for count, total, message in reports:
            await ctx.session.report_progress(float(count), None if total is None else float(total), message)


async def _cancel_on_exit(call: Call) -> None:
    """Cancel the call when this task is cancelled (the client cancelled the request)."""
    try:
        await anyio.sleep_forever()
    finally:
        call.cancel.cancel()


def build_server(catalogue: Catalogue | None = None) -> Server:
    """A low-level MCP :class:`~mcp.server.Server` serving ``catalogue`` (default: every tool)."""
    from sage_core import __version__

    catalogue = catalogue if catalogue is not None else Catalogue()
    listed = [types.Tool(name=t.name, description=t.description, input_schema=dict(t.input_schema),
                         output_schema=dict(t.output_schema) if t.output_schema else None)
              for t in catalogue.tools.values()]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        loop = asyncio.get_running_loop()
        send, receive = anyio.create_memory_object_stream[tuple](math.inf)
        # reports come from worker threads (the solver's, the call's): queued, never waited for
        call = Call(lambda *report: loop.call_soon_threadsafe(_put, send, report))
        async with anyio.create_task_group() as group:
            group.start_soon(_forward_progress, ctx, receive)
            async with anyio.create_task_group() as watch:
                watch.start_soon(_cancel_on_exit, call)
                try:
                    outcome = _result(await _run(catalogue, params.name, params.arguments or {}, call))
                except ToolInputError as exc:
                    outcome = _error(str(exc))
                except Exception as exc:  # noqa: BLE001 - the model reads what went wrong, not a bare failure
                    outcome = _error(f"{params.name} failed: {type(exc).__name__}: {exc}")
                finally:
                    watch.cancel_scope.cancel()
            send.close()  # the forwarder sends what is queued, then ends
        return outcome

    return Server(SERVER_NAME, version=__version__,
                  instructions="sage-irp reasoners as tools: solve puzzles with trained iterative-refinement "
                               "models and run reasoning pipelines; every answer says whether it was verified.",
                  on_list_tools=list_tools, on_call_tool=call_tool)


async def serve_stdio(server: Server) -> None:
    """Serve ``server`` over this process's stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class BearerToken:
    """ASGI wrapper: every request needs ``Authorization: Bearer <token>`` (401 otherwise)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": f"missing or wrong bearer token (set by {TOKEN_ENV})", "status": 401})
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body.encode()})
                return
        await self.app(scope, receive, send)


def http_app(server: Server, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The streamable-HTTP ASGI app of ``server`` at ``/mcp``; with ``token`` (default:
    ``$SAGE_API_TOKEN``) every request needs it as a bearer token."""
    app = server.streamable_http_app(host=host)
    token = os.environ.get(TOKEN_ENV) if token is None else token
    return BearerToken(app, token) if token else app
