"""IRPState: the immutable value a plugin refines, one per step."""

from __future__ import annotations

from typing import Any

import attrs


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"IRPState.{attribute.name} must be >= 0, got {value}")


@attrs.frozen(slots=True)
class IRPState:
    """One refinement state.

    ``x`` is the object being refined (a tensor, an array, or a dict/list of them), ``step``
    counts completed refinement steps, ``energy`` caches the plugin's energy (``None`` until
    computed; ``0.0`` is a real value), ``meta`` is a small JSON-able dict, and ``carry``
    holds extra tensors that must survive a restart (e.g. an HRM's H/L carries).
    Frozen, so ``step`` can never mutate its input: use :meth:`evolve`.
    """

    x: Any
    step: int = attrs.field(default=0, validator=_non_negative)
    energy: float | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)
    carry: dict[str, Any] = attrs.field(factory=dict)

    def evolve(self, **changes: Any) -> IRPState:
        """Return a copy with ``changes`` applied (``attrs.evolve``)."""
        return attrs.evolve(self, **changes)
