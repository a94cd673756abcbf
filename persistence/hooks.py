"""pluggy hooks of the persistence package: the ``sage sessions`` commands."""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl


@hookimpl
def sage_register_commands(cli: Any) -> None:
    from .cli import sessions_group

    cli.add_command(sessions_group)
