"""The tool catalogue: every LLM tool sage offers, with JSON schemas, independent of any protocol.

Built in: ``list_plugins`` and ``run_pipeline``. Every ``ToolSpec`` a plugin registers through
``sage_register_tools`` becomes a tool that solves one session of that plugin per call. Calls
go through :mod:`orchestrator.service`, the request layer ``sage serve`` uses: solves are
batched across concurrent calls by its Solver, pipeline runs are sessions of its RunManager.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import attrs

from sage_core import Registry, ToolSpec, get_registry

from ..service import CancelToken, RequestError, RunManager, Service, SolveRequest, parse_run

#: ``progress(count, total, message)``: called after every refinement step of a call and once
#: at its end; ``count`` rises by one per report, ``total`` is set on the last one.
Progress = Callable[[int, "int | None", str], None]

#: Seconds a run_pipeline call waits for new events before it checks its cancel flag again.
_POLL_S = 0.1


class ToolInputError(ValueError):
    """Arguments a tool refuses; the message names the argument and what it should be."""


@attrs.define(slots=True, eq=False)
class Call:
    """One tool call's side channel: progress after each step, and a token that cancels the call."""

    progress: Progress | None = None
    cancel: CancelToken = attrs.field(factory=CancelToken)
    reports: int = 0

    def report(self, message: str, last: bool = False) -> None:
        self.reports += 1
        if self.progress is not None:
            self.progress(self.reports, self.reports if last else None, message)


@attrs.frozen(slots=True)
class Tool:
    """A callable tool: ``run(arguments, call) -> dict`` (JSON-able), described by JSON schemas."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    run: Callable[[Mapping[str, Any], Call], dict[str, Any]]
    output_schema: Mapping[str, Any] | None = None
    #: ``submit(arguments, call) -> Future`` of the result, for tools whose work runs in the
    #: service's own thread (an async host awaits it without a thread of its own).
    submit: Callable[[Mapping[str, Any], Call], Future] | None = None


def check_arguments(tool: Tool, arguments: Any) -> Mapping[str, Any]:
    """Top-level checks every tool shares: an object, no unknown and no missing argument."""
    if not isinstance(arguments, Mapping):
        raise ToolInputError(f"{tool.name} takes a JSON object of arguments, got {type(arguments).__name__}")
    props = tool.input_schema.get("properties", {})
    unknown = sorted(set(arguments) - set(props))
    if unknown and tool.input_schema.get("additionalProperties", True) is False:
        raise ToolInputError(f"unknown argument(s) {unknown}; {tool.name} takes {sorted(props)}")
    for name in tool.input_schema.get("required", ()):
        if name not in arguments:
            hint = props.get(name, {}).get("description", "")
            raise ToolInputError(f"missing argument {name!r}" + (f": {hint}" if hint else ""))
    return arguments


def energy_text(energy: float | None) -> str:
    return "-" if energy is None else f"{energy:.6g}"


def input_error(error: RequestError, field: str | None = None) -> ToolInputError:
    """The service's refusal as a tool error naming the argument (``field`` overrides its field)."""
    field = field or error.field
    message = error.message
    return ToolInputError(message if not field or message.startswith(field) else f"{field}: {message}")


def solve_output_schema(answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The structured result of a plugin tool: the service's SolveResult, ``answer`` typed."""
    number = {"type": ["number", "null"]}
    return {"type": "object", "properties": {
        "answer": dict(answer or {}), "verified": {"type": "boolean"}, "energy": number,
        "segments": {"type": "integer", "description": "refinement steps used"},
        "reason": {"type": "string", "description": "why the session halted"}, "detail": {"type": "string"},
        "session": {"type": "string"}, "plugin": {"type": "string"}, "elapsed_s": {"type": "number"},
        "claims": {"type": ["array", "null"], "description": "each claim of a text answer and whether the claim "
                   "checker found it true (null where the plugin checks none)",
                   "items": {"type": "object",
                             "properties": {"claim": {"type": "string"}, "true": {"type": "boolean"}}}}},
        "required": ["answer", "verified", "segments", "reason"]}


@attrs.frozen(slots=True)
class ToolRequest(SolveRequest):
    """A solve whose plugin context is whatever the tool's ``prepare`` made of its arguments."""

    ctx: dict[str, Any] = attrs.field(factory=dict)

    def context(self) -> dict[str, Any]:
        return dict(self.ctx)


def spec_tool(spec: ToolSpec, service: Service) -> Tool:
    """The tool of a plugin's :class:`ToolSpec`: prepare, then one solve of the plugin."""
    field = next(iter(spec.input_schema.get("required", ())), None)

    def submit(arguments: Mapping[str, Any], call: Call) -> Future:
        try:
            x0, ctx = spec.prepare(arguments)
        except ValueError as exc:
            raise ToolInputError(str(exc)) from None
        request = ToolRequest(x0, plugin=spec.plugin, ctx=dict(ctx))
        on_step = (lambda event: call.report(f"step {event.step}: energy {energy_text(event.energy)}"))  # noqa: E731
        solving, answer = service.solver.submit(request, on_step=on_step, cancel=call.cancel), Future()
        answer.set_running_or_notify_cancel()  # cancelled through call.cancel, never by Future.cancel

        def resolve(done: Future) -> None:  # in the solver's thread
            try:
                result = done.result()
            except RequestError as exc:
                answer.set_exception(input_error(exc, field if exc.field == "puzzle" else None))
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
                answer.set_exception(exc)
                return
            call.report(f"halted: {result.reason} after {result.segments} step(s), energy {energy_text(result.energy)}",
                        last=True)
            answer.set_result(result.to_dict())

        solving.add_done_callback(resolve)
        return answer

    return Tool(spec.name, spec.description, spec.input_schema, lambda arguments, call: submit(arguments, call).result(),
                solve_output_schema(spec.answer_schema), submit)


LIST_PLUGINS_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}

RUN_PIPELINE_SCHEMA = {
    "type": "object",
    "properties": {
        "pipeline": {"type": "string", "maxLength": 64,
                     "description": "a pipeline name (list_plugins shows them, e.g. 'toy_chain')"},
        "toml": {"type": "string", "maxLength": 65536, "description": "the text of a pipeline TOML file"},
        "inputs": {"type": "object", "description": "input values by node name"},
        "budget": {"type": "number", "minimum": 0, "description": "ATP budget (default: the pipeline's)"},
        "session": {"type": "string", "maxLength": 64,
                    "description": "resume this stopped run instead (the session id of an earlier result)"},
    },
    "additionalProperties": False,
}


def run_pipeline(runs: RunManager, arguments: Mapping[str, Any], call: Call) -> dict[str, Any]:
    """Start (or, with ``session``, resume) a pipeline run and follow it to its end, reporting
    each step; a cancelled call stops the run checkpointed, resumable by its session id."""
    if "session" in arguments:
        run_id = runs.resume(str(arguments["session"]))
    else:
        run_id = runs.start(parse_run(dict(arguments), runs.limits))
    seen, done = 0, False
    while not done:
        if call.cancel.cancelled:
            runs.cancel(run_id)
            break
        events, done = runs.events(run_id, seen, timeout=_POLL_S)
        seen += len(events)
        for event in events:
            if event.get("kind") == "step":
                call.report(f"{event['plugin']} step {event['step']}: energy {energy_text(event['energy'])}")
            elif event.get("kind") == "halt":
                call.report(f"{event['plugin']} halted: {event['policy']} after {event['step']} step(s)")
    status = runs.status(run_id)
    call.report(f"run {status['status']}", last=True)
    return {"session": run_id, **status}


class Catalogue:
    """The tools of a registry (default: the process-wide one) by name, served through ``service``
    (default: a new :class:`~orchestrator.service.Service` on the default SessionStore)."""

    def __init__(self, registry: Registry | None = None, *, service: Service | None = None) -> None:
        self.registry = registry if registry is not None else get_registry()
        self.service = service if service is not None else Service(registry=self.registry)
        self.tools: dict[str, Tool] = {
            "list_plugins": Tool("list_plugins", "List the installed sage plugins (reasoners), tools and pipelines.",
                                 LIST_PLUGINS_SCHEMA, self._list_plugins),
            "run_pipeline": Tool("run_pipeline", "Run a sage reasoning pipeline (several IRP plugins joined by "
                                 "bridges) under an ATP budget as a checkpointed session; the result names the "
                                 "session so a later call can resume it.", RUN_PIPELINE_SCHEMA,
                                 lambda arguments, call: run_pipeline(self.service.runs, arguments, call)),
        }
        for name, item in sorted(self.registry.items("tool").items()):
            if name not in self.tools:
                self.tools[name] = spec_tool(item.obj, self.service)

    def get(self, name: str) -> Tool:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolInputError(f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}")
        return tool

    def _checked(self, tool: Tool, arguments: Any) -> Mapping[str, Any]:
        """``arguments`` checked (:func:`check_arguments`) and no larger as JSON than the
        service's request body limit."""
        arguments = check_arguments(tool, arguments)
        size = len(json.dumps(arguments, default=str))
        limit = self.service.limits.max_body_bytes
        if size > limit:
            raise ToolInputError(f"the arguments are {size} bytes of JSON, the limit is {limit}; send a smaller input")
        return arguments

    def call(self, name: str, arguments: Any, call: Call | None = None) -> dict[str, Any]:
        """Run tool ``name``; ToolInputError for bad arguments (naming them)."""
        tool = self.get(name)
        try:
            return tool.run(self._checked(tool, arguments), call or Call())
        except RequestError as exc:
            raise input_error(exc) from None

    def submit(self, name: str, arguments: Any, call: Call) -> Future | None:
        """Start tool ``name`` in the service's thread: a Future of its result, or None when the
        tool has no such path (then :meth:`call` it from a thread)."""
        tool = self.get(name)
        if tool.submit is None:
            return None
        try:
            return tool.submit(self._checked(tool, arguments), call)
        except RequestError as exc:
            raise input_error(exc) from None

    def close(self) -> None:
        """Stop the service: running pipeline runs are checkpointed."""
        self.service.close()

    def _list_plugins(self, arguments: Mapping[str, Any], call: Call) -> dict[str, Any]:
        tools = [{"name": t.name, "description": t.description} for t in self.tools.values()]
        return {"plugins": self.service.plugins(), "tools": tools, "pipelines": self.service.runs.pipelines()}
