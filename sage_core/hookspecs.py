"""pluggy hook specifications of the ``sage`` project.

Collecting hooks receive a ``register`` callback (the idiom of ``llm``): the host calls each
implementation separately, so it knows which distribution contributed what, can refuse
duplicates and can undo a plugin's registrations if one of them is invalid.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "sage"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def sage_register_plugins(register: Any) -> None:
    """Register IRP plugin classes: call ``register(PluginClass)`` once per plugin.

    The class is validated against the IRP contract (see ``sage check``) and its ``name`` must
    be unique across installed distributions.
    """


@hookspec
def sage_register_bridges(register: Any) -> None:
    """Register bridges: ``register(bridge, name=None)``; a bridge is a callable turning a
    source state into a target input, with ``name``, ``source_kind`` and ``target_kind``."""


@hookspec
def sage_register_backends(register: Any) -> None:
    """Register execution backends or schedulers: ``register(factory, name=None)``."""


@hookspec
def sage_telemetry_sinks(register: Any) -> None:
    """Register telemetry sink factories: ``register(factory, name=None)``; a factory
    returns an object with ``emit(event)`` and ``close()``."""


@hookspec
def sage_register_tools(register: Any) -> None:
    """Declare LLM tools: ``register(ToolSpec(...))``; each becomes an MCP tool (``sage mcp``)
    and an ``llm`` tool that runs one session of the named IRP plugin per call."""


@hookspec
def sage_register_commands(cli: Any) -> None:
    """Add click commands or groups to the ``sage`` command line: ``cli.add_command(cmd)``."""


@hookspec
def sage_session_started(session: str, nodes: list[str]) -> None:
    """Observer: a session with the given node names has started (or resumed)."""


@hookspec
def sage_plugin_halted(session: str, node: str, event: Any) -> None:
    """Observer: a node of a session halted; ``event`` is its :class:`~sage_core.HaltEvent`."""


@hookspec
def sage_session_finished(session: str, result: Any) -> None:
    """Observer: a session finished; ``result`` is the orchestrator's result object."""


#: Hooks whose implementations register things through a callback.
COLLECTING_HOOKS = (
    "sage_register_plugins",
    "sage_register_bridges",
    "sage_register_backends",
    "sage_telemetry_sinks",
    "sage_register_tools",
)
