"""pluggy hooks of the toy plugins: the same entry-point path a third party uses."""

from __future__ import annotations

from typing import Any

from sage_core import hookimpl

from .batched import BatchedTanhRegression
from .plugin import QuadraticDescent


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(QuadraticDescent)
    register(BatchedTanhRegression)
