"""The ``llm`` plugin (entry point group ``llm``): sage's tools for ``llm -T NAME``.

Registers every tool of the :class:`~orchestrator.tools.Catalogue` through llm's
``register_tools`` hook with the same JSON schema the MCP server lists; a call returns the
structured result as JSON text, and bad arguments raise ``ValueError`` naming the argument,
which llm hands back to the model as the tool's error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import llm

if TYPE_CHECKING:
    from ._catalogue import Catalogue, Tool


def llm_tool(catalogue: Catalogue, tool: Tool) -> llm.Tool:
    """The ``llm.Tool`` of one catalogue tool."""

    from ._catalogue import Call

    def implementation(**arguments: Any) -> str:
        return json.dumps(catalogue.call(tool.name, arguments, Call()), default=str)

    return llm.Tool(name=tool.name, description=tool.description, input_schema=dict(tool.input_schema),
                    implementation=implementation)


@llm.hookimpl
def register_tools(register: Any) -> None:
    from ._catalogue import Catalogue  # imported here: llm loads this module on every command

    catalogue = Catalogue()
    for tool in catalogue.tools.values():
        register(llm_tool(catalogue, tool))
