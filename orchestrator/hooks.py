"""pluggy hooks of the orchestrator package: the run/resume/plot/demo commands and the
built-in schedulers and backends (registered like a third party's would be)."""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl


@hookimpl
def sage_register_commands(cli: Any) -> None:
    from .cli import plot_command, resume_command, run_command
    from .demo import demo_command

    for command in (run_command, resume_command, plot_command, demo_command):
        cli.add_command(command)

    from .tools.cli import mcp_command

    cli.add_command(mcp_command)

    from .http.cli import serve_command

    cli.add_command(serve_command)
