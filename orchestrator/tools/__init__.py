"""orchestrator.tools: sage's solvers and pipelines as tools a language model can call.

The :class:`Catalogue` holds the tools (``list_plugins``, ``run_pipeline`` and every
``ToolSpec`` a plugin registers through ``sage_register_tools``); ``sage mcp`` serves it over
the Model Context Protocol (extra ``sage-irp[mcp]``) and the ``llm`` entry point registers it
with Simon Willison's ``llm`` (extra ``sage-irp[llm]``). See docs/tools.md.
"""

from ._catalogue import Call, Catalogue, Tool, ToolInputError, check_arguments

MCP_EXTRA = "sage mcp needs the MCP SDK: pip install 'sage-irp[mcp]'"


def build_server(catalogue: Catalogue | None = None):  # noqa: ANN201 - mcp is an optional extra
    """The MCP server of ``catalogue`` (see :func:`orchestrator.tools._mcp.build_server`)."""
    try:
        from ._mcp import build_server as _build
    except ImportError as exc:
        raise ImportError(f"{MCP_EXTRA} ({exc})") from None
    return _build(catalogue)


__all__ = ["MCP_EXTRA", "Call", "Catalogue", "Tool", "ToolInputError", "build_server", "check_arguments"]
