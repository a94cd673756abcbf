"""pluggy hooks of the bridges package: registers the built-in bridges."""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl

from ._builtin import BUILTIN_BRIDGES


@hookimpl
def sage_register_bridges(register: Any) -> None:
    for item in BUILTIN_BRIDGES:
        register(item, name=item.name)
