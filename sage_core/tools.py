"""ToolSpec: an LLM tool a plugin declares through ``sage_register_tools``.

A tool call is one IRP session of a registered plugin: ``prepare`` turns the tool's JSON
arguments into the plugin's input and context (raising ``ValueError`` that names the bad
argument, which the calling model reads), and the host refines the session (progress per step,
cancellation, batching) and answers with the plugin's ``solution(state)`` (its user format),
whether it is verified, the energy and the halt reason. The host (MCP server, ``llm`` plugin)
owns the protocol, so a plugin never imports one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from .errors import PluginContractError

#: Tool names MCP clients and LLM APIs accept (letters, digits, ``_``, ``-``; at most 64).
TOOL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def _check_name(_: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not TOOL_NAME.match(value):
        raise PluginContractError(f"tool {attribute.name} {value!r} must match {TOOL_NAME.pattern} "
                                  "(a letter, then letters, digits, '_' or '-', at most 64)")


def _check_input_schema(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, Mapping) or value.get("type") != "object":
        raise PluginContractError(f"tool input_schema must be a JSON schema of type 'object', got {value!r}")


def _check_callable(_: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not callable(value):
        raise PluginContractError(f"tool {attribute.name} must be callable, got {value!r}")


@attrs.frozen(slots=True)
class ToolSpec:
    """An LLM tool that runs one session of the IRP plugin ``plugin`` per call.

    ``prepare(arguments) -> (x0, ctx)`` validates the arguments (``ValueError`` naming the
    argument); ``answer_schema`` is the JSON schema of the plugin's ``solution(state)``, the
    answer the tool returns.
    """

    name: str = attrs.field(validator=_check_name)
    description: str = attrs.field(validator=attrs.validators.instance_of(str))
    plugin: str = attrs.field(validator=attrs.validators.instance_of(str))
    input_schema: Mapping[str, Any] = attrs.field(validator=_check_input_schema)
    prepare: Callable[[Mapping[str, Any]], tuple[Any, dict[str, Any]]] = attrs.field(validator=_check_callable)
    answer_schema: Mapping[str, Any] | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Mapping)))


def validate_tool(obj: Any) -> None:
    """Raise PluginContractError unless ``obj`` is a :class:`ToolSpec`."""
    if not isinstance(obj, ToolSpec):
        raise PluginContractError(f"register() of sage_register_tools takes a sage_core.ToolSpec, got {obj!r}")
