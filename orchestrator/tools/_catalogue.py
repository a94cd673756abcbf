"""The tool catalogue: every LLM tool sage offers, with JSON schemas, independent of any protocol.

Built in: ``list_plugins`` and ``run_pipeline``. Every ``ToolSpec`` a plugin registers through
``sage_register_tools`` becomes a tool that runs one session of that plugin per call. The MCP
server and the ``llm`` plugin both serve this catalogue.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from sage_core import Registry, ToolSpec, get_registry

from ._run import run_pipeline, solve_session

#: ``progress(count, total, message)``: called after every refinement step of a call (and once at
#: its halt); ``count`` rises by one per report, ``total`` is the most there can be, if known.
Progress = Callable[[int, "int | None", str], None]


class ToolInputError(ValueError):
    """Arguments a tool refuses; the message names the argument and what it should be."""


@attrs.define(slots=True, eq=False)
class Call:
    """One tool call's side channel: progress after each step, and a flag that cancels the call."""

    progress: Progress | None = None
    cancel: threading.Event = attrs.field(factory=threading.Event)
    reports: int = 0

    def report(self, message: str, total: int | None = None) -> None:
        self.reports += 1
        if self.progress is not None:
            self.progress(self.reports, total, message)


@attrs.frozen(slots=True)
class Tool:
    """A callable tool: ``run(arguments, call) -> dict`` (JSON-able), described by JSON schemas."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    run: Callable[[Mapping[str, Any], Call], dict[str, Any]]
    output_schema: Mapping[str, Any] | None = None


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


def finite(value: float | None) -> float | None:
    """A JSON-safe energy: non-finite values become None."""
    return value if value is not None and math.isfinite(value) else None


def spec_tool(spec: ToolSpec, registry: Registry) -> Tool:
    """The tool of a plugin's :class:`ToolSpec`: prepare, one session of the plugin, its result."""
    lock = threading.Lock()
    instances: list[Any] = []
    field = next(iter(spec.input_schema.get("required", ())), "arguments")

    def plugin() -> Any:
        with lock:
            if not instances:
                instances.append(registry.create(spec.plugin, **dict(spec.config)))
            return instances[0]

    def run(arguments: Mapping[str, Any], call: Call) -> dict[str, Any]:
        try:
            x0, ctx = spec.prepare(arguments)
        except ValueError as exc:
            raise ToolInputError(str(exc)) from None
        out = solve_session(plugin(), x0, ctx, spec.max_steps, call)
        if out.state is None:  # refused at init_state: the input, not the tool, is at fault
            detail = out.fault.detail if out.fault is not None else out.decision.reason
            raise ToolInputError(f"{field}: {detail.split(': ', 1)[-1]}")
        if out.fault is not None:
            raise RuntimeError(f"{spec.plugin} failed after {out.steps} step(s): {out.fault.detail}")
        result = dict(spec.result(out.state))
        result.update(steps=out.steps, energy=finite(out.energy), halt_reason=out.decision.policy)
        return result

    return Tool(spec.name, spec.description, spec.input_schema, run, spec.output_schema)


LIST_PLUGINS_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}

RUN_PIPELINE_SCHEMA = {
    "type": "object",
    "properties": {
        "pipeline": {"type": "string", "maxLength": 64,
                     "description": "a pipeline name (a TOML file of examples/pipelines, e.g. 'toy_chain')"},
        "toml": {"type": "string", "maxLength": 65536, "description": "the text of a pipeline TOML file"},
        "inputs": {"type": "object", "description": "input values by node name"},
        "budget": {"type": "number", "minimum": 0, "description": "ATP budget (default: the pipeline's)"},
        "session": {"type": "string", "maxLength": 64,
                    "description": "resume this stopped session instead (its id from an earlier result)"},
    },
    "additionalProperties": False,
}


class Catalogue:
    """The tools of a registry (default: the process-wide one), by name."""

    def __init__(self, registry: Registry | None = None, *, store: Any = None,
                 pipelines_dir: Any = None) -> None:
        self.registry = registry if registry is not None else get_registry()
        self.store = store
        self.pipelines_dir = pipelines_dir
        self.tools: dict[str, Tool] = {
            "list_plugins": Tool("list_plugins", "List the installed sage plugins (reasoners) and tools.",
                                 LIST_PLUGINS_SCHEMA, self._list_plugins),
            "run_pipeline": Tool("run_pipeline", "Run a sage reasoning pipeline (several IRP plugins joined by "
                                 "bridges) under an ATP budget as a checkpointed session; the result names the "
                                 "session so a later call can resume it.", RUN_PIPELINE_SCHEMA, self._run_pipeline),
        }
        for name, item in sorted(self.registry.items("tool").items()):
            if name not in self.tools:
                self.tools[name] = spec_tool(item.obj, self.registry)

    def get(self, name: str) -> Tool:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolInputError(f"unknown tool {name!r}; available: {', '.join(sorted(self.tools))}")
        return tool

    def call(self, name: str, arguments: Any, call: Call | None = None) -> dict[str, Any]:
        """Run tool ``name``; ToolInputError for bad arguments (naming them)."""
        tool = self.get(name)
        return tool.run(check_arguments(tool, arguments), call or Call())

    def _list_plugins(self, arguments: Mapping[str, Any], call: Call) -> dict[str, Any]:
        plugins = [{"name": item.name, "version": item.version, "distribution": item.distribution,
                    "input_kind": getattr(item.obj, "input_kind", None),
                    "output_kind": getattr(item.obj, "output_kind", None)}
                   for item in sorted(self.registry.plugins.values(), key=lambda i: i.name)]
        tools = [{"name": t.name, "description": t.description} for t in self.tools.values()]
        return {"plugins": plugins, "tools": tools}

    def _run_pipeline(self, arguments: Mapping[str, Any], call: Call) -> dict[str, Any]:
        try:
            return run_pipeline(arguments, call, registry=self.registry, store=self.store,
                                pipelines_dir=self.pipelines_dir)
        except ValueError as exc:
            raise ToolInputError(str(exc)) from None
