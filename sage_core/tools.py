"""ToolSpec: an LLM tool a plugin declares through ``sage_register_tools``.

A tool call is one IRP session of a registered plugin: ``prepare`` turns the tool's JSON
arguments into the plugin's input and context (raising ``ValueError`` that names the bad
argument, which the calling model reads), the host refines the session (progress per step,
cancellation, persistence), and ``result`` turns the final state into a JSON-able dict. The
host (MCP server, ``llm`` plugin) owns the protocol, so a plugin never imports one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import PluginContractError
from .state import IRPState

#: Tool names MCP clients and LLM APIs accept (letters, digits, ``_``, ``-``; at most 64).
TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _check_name(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not TOOL_NAME.match(value):
        raise PluginContractError(f"tool {attribute.name} {value!r} must match {TOOL_NAME.pattern} "
                                  "(a letter, then letters, digits, '_' or '-', at most 64)")


def _check_schema(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None and attribute.name == "output_schema":
        return
    if not isinstance(value, Mapping) or value.get("type") != "object":
        raise PluginContractError(f"tool {attribute.name} must be a JSON schema of type 'object', got {value!r}")


def _check_callable(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not callable(value):
        raise PluginContractError(f"tool {attribute.name} must be callable, got {value!r}")


@attrs.frozen(slots=True)
class ToolSpec:
    """An LLM tool that runs one session of the IRP plugin ``plugin`` per call.

    ``prepare(arguments) -> (x0, ctx)`` validates the arguments (``ValueError`` naming the
    argument); ``result(state) -> dict`` is the structured answer; ``config`` is passed to the
    plugin's constructor; ``max_steps`` caps the session (the caller may ask for fewer).
    """

    name: str = attrs.field(validator=_check_name)
    description: str = attrs.field(validator=attrs.validators.instance_of(str))
    plugin: str = attrs.field(validator=attrs.validators.instance_of(str))
    input_schema: Mapping[str, Any] = attrs.field(validator=_check_schema)
    prepare: Callable[[Mapping[str, Any]], tuple[Any, dict[str, Any]]] = attrs.field(validator=_check_callable)
    result: Callable[[IRPState], dict[str, Any]] = attrs.field(validator=_check_callable)
    output_schema: Mapping[str, Any] | None = attrs.field(default=None, validator=_check_schema)
    config: Mapping[str, Any] = attrs.field(factory=dict)
    max_steps: int = attrs.field(default=100, validator=attrs.validators.gt(0))


def validate_tool(obj: Any) -> None:
    """Raise PluginContractError unless ``obj`` is a :class:`ToolSpec`."""
    if not isinstance(obj, ToolSpec):
        raise PluginContractError(f"register() of sage_register_tools takes a sage_core.ToolSpec, got {obj!r}")
