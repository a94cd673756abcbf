"""The FastAPI app of ``sage serve``: JSON endpoints over :class:`orchestrator.service.Service`,
SSE run events, the web page, limits (413/422/503), the bearer token and graceful shutdown."""

# no "from __future__ import annotations": FastAPI reads the route annotations, imported inside create_app

import asyncio
import json
import math
import os
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs

from ..service import CancelToken, Limits, RequestError, Service, parse_json, parse_run, parse_solve
from ._auth import authorized, is_open
from ._sse import KEEPALIVE, sse_frame

STATIC = Path(__file__).parent / "static"
_SSE_WAIT_S = 0.25
_KEEPALIVE_EVERY = 40  # idle waits between keep-alive comments (10 s)
#: HTTP status for a request whose client went away (nginx's convention; never seen by that client).
CLIENT_CLOSED = 499


@attrs.frozen(slots=True)
class ServeConfig:
    """How to build the app's :class:`Service` (plain values, so a Ray replica can rebuild it):
    ``store`` directory, ``batching``, ``max_batch``, ``limits``, ``pipelines_dir``, the
    bearer ``token`` (None: read ``SAGE_API_TOKEN``; empty: no token) and the solver's
    ``batch_wait_s``."""

    store: str | None = None
    batching: bool = True
    max_batch: int = 64
    limits: Limits = Limits()
    pipelines_dir: str | None = None
    token: str | None = None
    batch_wait_s: float = 0.005

    def build(self) -> Service:
        """A new :class:`Service` with these settings."""
        return Service(self.store, limits=self.limits, batching=self.batching, max_batch=self.max_batch,
                       batch_wait_s=self.batch_wait_s,
                       pipelines_dir=None if self.pipelines_dir is None else Path(self.pipelines_dir))

    def api_token(self) -> str:
        """The bearer token the app requires ('' for none)."""
        return os.environ.get("SAGE_API_TOKEN", "") if self.token is None else self.token


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(RequestError(message, field=field, status=status).to_dict(), status, headers=headers)


#: JSON as Starlette's JSONResponse renders it (strict: NaN raises), without building an encoder per response.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode


def json_bytes(value: Any) -> bytes:
    """``value`` as the body of a JSON response (the bytes Starlette's ``JSONResponse`` sends)."""
    return _ENCODE(value).encode("utf-8")


def _retry_after(exc: RequestError) -> dict[str, str] | None:
    return None if exc.retry_after is None else {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}


async def send_json(send: Any, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
    """A whole JSON response on the raw ASGI ``send`` (the headers JSONResponse would send)."""
    body = json_bytes(value)
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: dict, name: bytes, last: bool = False) -> bytes | None:
    """A request header's value from the ASGI scope (the first, or with ``last`` the last, of repeats)."""
    found = None
    for key, value in scope["headers"]:
        if key == name:
            if not last:
                return value
            found = value
    return found


class TokenGuard:
    """ASGI middleware: 401 JSON unless ``Authorization: Bearer <token>`` (open paths excepted)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.token and not token_ok(scope, self.token):
            await send_json(send, *_UNAUTHORIZED)
            return
        await self.app(scope, receive, send)


_UNAUTHORIZED = (401, RequestError("missing or wrong bearer token: send 'Authorization: Bearer <SAGE_API_TOKEN>'",
                                   field="Authorization", status=401).to_dict(), {"WWW-Authenticate": "Bearer"})


def token_ok(scope: dict, token: str) -> bool:
    """The request may pass: an open path, or ``Authorization: Bearer <token>`` (the last such header)."""
    if is_open(scope["path"]):
        return True
    return authorized((_header(scope, b"authorization", last=True) or b"").decode("latin-1"), token)


class _ClientGone(Exception):
    """The client disconnected before its request body was read."""


async def read_body(scope: dict, receive: Any, limit: int) -> bytes:
    """The request body from the raw ASGI ``receive``, refused with 413 as soon as it passes
    ``limit`` bytes (before reading it all when Content-Length says so)."""
    declared = (_header(scope, b"content-length") or b"").decode("latin-1")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body is {declared} bytes, the limit is {limit}", status=413)
    message = await receive()
    body = message.get("body", b"")
    if message["type"] == "http.request" and not message.get("more_body", False):
        if len(body) > limit:
            raise RequestError(f"request body is over the {limit}-byte limit", status=413)
        return body  # the whole body in one message: the usual case
    chunks = bytearray(body)
    while True:
        if message["type"] == "http.disconnect":
            raise _ClientGone()
        if len(chunks) > limit:
            raise RequestError(f"request body is over the {limit}-byte limit", status=413)
        if not message.get("more_body", False):
            return bytes(chunks)
        message = await receive()
        chunks += message.get("body", b"")


def _wake(waiter: asyncio.Future, *_: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_from_thread(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, _: Any) -> None:
    if not loop.is_closed():  # a solve settled after the server stopped has no one to wake
        loop.call_soon_threadsafe(_wake, waiter)


async def _disconnect(receive: Any, waiter: asyncio.Future) -> None:
    """Wakes ``waiter`` when the client has gone away (the body is read, so the next ASGI
    message is the disconnect)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # noqa: BLE001 - a broken connection is a client gone
        pass
    _wake(waiter)


async def solve(service: Service, limits: Limits, scope: dict, receive: Any) -> Any:
    """``POST /v1/solve`` on raw ASGI: the :class:`SolveResult`, None if the client went away
    (its solve is cancelled), or a :class:`RequestError` raised. Both the route and the app's
    fast path (:class:`SageAPI`) answer through this."""
    try:
        body = await read_body(scope, receive, limits.max_body_bytes)
    except _ClientGone:
        return None
    request = parse_solve(parse_json(body, limits), limits)
    token = CancelToken()
    future = service.solver.submit(request, cancel=token)
    # one plain asyncio future woken by whichever comes first, the answer (from the solver's
    # thread) or the disconnect: lighter than wrap_future + asyncio.wait, on every request
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    future.add_done_callback(partial(_wake_from_thread, loop, waiter))
    gone = loop.create_task(_disconnect(receive, waiter))
    try:
        await waiter
    except BaseException:  # this handler was cancelled (the server is stopping)
        token.cancel()
        raise
    finally:
        gone.cancel()
    if not future.done():  # the client went away: its session leaves the batch at the next round
        token.cancel()
        return None
    return future.result()


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required, "additionalProperties": False}}}}}


SOLVE_SCHEMA = _schema({
    "puzzle": {"description": "Sudoku grid (n lists of n ints, 0 = blank) or maze "
                              "(equal-length strings of '#', ' ', 'S', 'G')",
               "oneOf": [{"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
                         {"type": "array", "items": {"type": "string"}}]},
    "mode": {"type": "string", "enum": ["irp", "bare"], "default": "irp"},
    "max_steps": {"type": "integer", "minimum": 1},
    "plugin": {"type": "string", "default": "hrm"},
    "seed": {"type": "integer", "minimum": 0, "default": 0}}, ["puzzle"])
RUN_SCHEMA = _schema({
    "pipeline": {"type": "string", "description": "a name from GET /v1/pipelines"},
    "toml": {"type": "string", "description": "the text of a pipeline TOML file"},
    "inputs": {"type": "object", "description": "input value by node name"},
    "budget": {"type": "number", "minimum": 0}}, [])


def create_app(config: ServeConfig = ServeConfig(), service: Service | None = None) -> Any:
    """The FastAPI app. ``service``: use this one (tests); else one is built from ``config`` at
    startup (or at the first request, under Ray Serve) and closed, checkpointing runs, at shutdown."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
        from fastapi.staticfiles import StaticFiles
        from starlette.concurrency import run_in_threadpool
        from starlette.exceptions import HTTPException
    except ImportError as exc:
        raise ImportError(f"sage serve needs FastAPI and uvicorn: pip install 'sage-irp[serve]' ({exc})") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        svc(app)
        try:
            yield
        finally:
            made = app.state.service
            if made is not None:
                await run_in_threadpool(made.close)

    app = _api_class(FastAPI)(title="sage-irp", summary="Solve puzzles and run IRP pipelines; live telemetry "
                              "over SSE.", lifespan=lifespan)
    app.fast_solve = True
    app.state.service = service
    app.state.config = config
    limits = config.limits if service is None else service.limits

    def svc(app_: Any) -> Service:
        if app_.state.service is None:
            app_.state.service = app_.state.config.build()
        return app_.state.service

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), exc.status, headers=_retry_after(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = {404: f"no endpoint {request.url.path}; see /docs", 405: f"{request.method} is not allowed on "
                   f"{request.url.path}; see /docs"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return _error(422, f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); please report it")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", summary="Liveness and load")
    async def healthz(request: Request) -> dict[str, Any]:
        s = svc(request.app)
        return {"status": "ok", "pending_solves": s.solver.pending, "batching": s.solver.batching,
                "solves": dict(s.solver.counts),
                "runs": sum(r["status"] == "running" for r in s.runs.list())}

    @app.get("/v1/plugins", summary="Installed plugins (as `sage plugins --json`)")
    async def plugins(request: Request) -> list[dict[str, Any]]:
        return svc(request.app).plugins()

    @app.get("/v1/sessions", summary="Sessions in the store")
    async def sessions(request: Request) -> list[dict[str, Any]]:
        return await run_in_threadpool(svc(request.app).sessions)

    @app.get("/v1/pipelines", summary="Pipeline names POST /v1/runs accepts")
    async def pipelines(request: Request) -> list[str]:
        return svc(request.app).runs.pipelines()

    @app.post("/v1/solve", summary="Solve one puzzle (batched with concurrent requests)", openapi_extra=SOLVE_SCHEMA)
    async def solve_route(request: Request) -> Response:
        # SageAPI answers POST /v1/solve before this route is reached; the route documents it in
        # /openapi.json and answers it where the fast path is off or does not match (a root_path)
        result = await solve(svc(request.app), limits, request.scope, request.receive)
        if result is None:
            return Response(status_code=CLIENT_CLOSED)
        return Response(json_bytes(result.to_dict()), media_type="application/json")

    @app.post("/v1/runs", status_code=201, summary="Start a pipeline run (a session in the store)",
              openapi_extra=RUN_SCHEMA)
    async def start_run(request: Request) -> dict[str, Any]:
        s = svc(request.app)
        try:
            body = await read_body(request.scope, request.receive, limits.max_body_bytes)
        except _ClientGone:
            return Response(status_code=CLIENT_CLOSED)
        run_request = parse_run(parse_json(body, limits), limits)
        run_id = await run_in_threadpool(s.runs.start, run_request)
        return {"id": run_id, "status": "running", "events": f"/v1/runs/{run_id}/events"}

    @app.get("/v1/runs", summary="Runs this server has started or resumed")
    async def list_runs(request: Request) -> list[dict[str, Any]]:
        return svc(request.app).runs.list()

    @app.get("/v1/runs/{run_id}", summary="Status and per-node results of a run")
    async def run_status(run_id: str, request: Request) -> dict[str, Any]:
        return await run_in_threadpool(svc(request.app).runs.status, run_id)

    @app.delete("/v1/runs/{run_id}", summary="Cancel a run (checkpointed, resumable)")
    async def cancel_run(run_id: str, request: Request) -> dict[str, Any]:
        return await run_in_threadpool(svc(request.app).runs.cancel, run_id)

    @app.post("/v1/runs/{run_id}/resume", summary="Resume a saved run from its latest checkpoint")
    async def resume_run(run_id: str, request: Request) -> dict[str, Any]:
        await run_in_threadpool(svc(request.app).runs.resume, run_id)
        return {"id": run_id, "status": "running", "events": f"/v1/runs/{run_id}/events"}

    @app.get("/v1/runs/{run_id}/events", summary="Server-Sent Events: one per step and per halt, then end")
    async def run_events(run_id: str, request: Request, after: int = 0) -> StreamingResponse:
        runs = svc(request.app).runs
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if last.isdigit() else max(after, 0)
        await run_in_threadpool(runs.events, run_id, start, 0)  # 404 now, before the stream starts

        async def stream() -> Any:
            index, idle = start, 0
            while True:
                index, events, finished = await run_in_threadpool(runs.events_from, run_id, index, _SSE_WAIT_S)
                for event in events:
                    yield sse_frame(index, event)
                    index += 1
                if finished and not events:
                    return
                if events:
                    idle = 0
                    continue
                if await request.is_disconnected():
                    return
                idle += 1
                if idle % _KEEPALIVE_EVERY == 0:
                    yield KEEPALIVE

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    token = config.api_token()
    if token:
        app.add_middleware(TokenGuard, token=token)
    app.solve_endpoint = (svc, limits, token)
    return app


_API_CLASSES: dict[type, type] = {}


def _api_class(fastapi_class: type) -> type:
    """:class:`SageAPI` over FastAPI (imported lazily: the package imports without the extra)."""
    cls = _API_CLASSES.get(fastapi_class)
    if cls is None:
        cls = _API_CLASSES[fastapi_class] = type("SageAPI", (fastapi_class,), {
            "__call__": _sage_api_call, "_fastapi_call": fastapi_class.__call__, "__module__": __name__,
            "__doc__": "FastAPI with a fast path for ``POST /v1/solve`` (see :func:`_sage_api_call`)."})
    return cls


async def _sage_api_call(self: Any, scope: dict, receive: Any, send: Any) -> None:
    """The app's ASGI entry: ``POST /v1/solve`` is answered here on raw ASGI, the rest by FastAPI.

    The solve endpoint is the server's hot path: under load its requests are stepped in batches,
    and FastAPI's middleware, routing and request/response objects cost the event loop more CPU
    per request than the rest of the request did (the loop's CPU per solve went from about 0.6 ms
    to 0.2 ms without them). Here the same checks run (the token, the body limit, the parsing that
    names the field in a 422, 503s with Retry-After, cancellation when the client goes away) with
    the same JSON answers; the FastAPI route stays for ``/openapi.json``, for requests this path
    does not match (under a ``root_path``) and with ``app.fast_solve = False``."""
    if scope["type"] == "http" and scope["path"] == "/v1/solve" and scope["method"] == "POST" \
            and self.fast_solve and not scope.get("root_path"):
        get_service, limits, token = self.solve_endpoint
        try:
            if token and not token_ok(scope, token):
                await send_json(send, *_UNAUTHORIZED)
                return
            result = await solve(get_service(self), limits, scope, receive)
            if result is None:
                await send({"type": "http.response.start", "status": CLIENT_CLOSED,
                            "headers": [(b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            await send_json(send, 200, result.to_dict())
        except RequestError as exc:
            await send_json(send, exc.status, exc.to_dict(), _retry_after(exc))
        except Exception as exc:  # as the app's handler answers it; then raised for the server to log
            await send_json(send, 500, RequestError(f"internal error ({type(exc).__name__}: {exc}); please report it",
                                                    status=500).to_dict())
            raise
        return
    await self._fastapi_call(scope, receive, send)
