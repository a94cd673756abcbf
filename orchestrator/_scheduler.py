"""Schedulers: which running node steps next. Replaceable (parameter or ``sage_register_backends``).

A scheduler has ``name``, ``select(candidates, k) -> list[str]`` (up to ``k`` distinct node
names among ``candidates``, best first), and ``state_dict()``/``load_state_dict(d)`` so a
resumed session schedules exactly as the uninterrupted one would. A candidate exposes
``name``, ``index`` (pipeline order), ``history`` (:class:`~sage_core.EnergyHistory`),
``next_cost`` (ATP of its next step) and ``trust``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Scheduler(Protocol):
    name: str

    def select(self, candidates: Sequence[Any], k: int) -> list[str]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class EnergyDropScheduler:
    """Default: the node with the highest expected energy drop per ATP steps next.

    Expected drop = mean energy decrease over the last ``window`` steps of the node; divided by
    the ATP its next step costs. A node that has not stepped yet goes first (unknown = most
    promising). Ties go to the node stepped least recently, then to pipeline order.
    """

    name = "energy_drop"

    def __init__(self, window: int = 3) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._tick = 0
        self._last: dict[str, int] = {}
        self._candidates: Sequence[Any] | None = None
        self._keys: list[tuple] = []
        self._position: dict[str, int] = {}

    def priority(self, candidate: Any) -> float:
        energies = candidate.history.energies
        n = len(energies) - 1
        if n < 1:
            return math.inf
        window, cost = self.window, candidate.next_cost
        w = n if n < window else window  # min() and max() without the builtin calls: this runs every step
        drop = (energies[-1 - w] - energies[-1]) / w
        return drop / (1e-12 if cost < 1e-12 else cost)

    def select(self, candidates: Sequence[Any], k: int) -> list[str]:
        last = self._last
        self._candidates = None
        ranked = sorted(candidates, key=lambda c: (-self.priority(c), last.get(c.name, -1), c.index))
        chosen = [c.name for c in ranked[:k]]
        for name in chosen:
            self._tick += 1
            last[name] = self._tick
        return chosen

    def _key(self, c: Any) -> tuple:
        """Sort key of a candidate: best first, then least recently stepped, then pipeline order."""
        return (-self.priority(c), self._last.get(c.name, -1), c.index, c.name)

    def pick(self, candidates: Sequence[Any], changed: str | None) -> str:
        """``select(candidates, 1)[0]``, for a host that calls it again with the very same list
        in which only ``changed`` (the previous pick, since stepped) has moved: one candidate's
        rank is recomputed instead of all of them (the multi-node fast path of ``finish``);
        ``changed=None`` or another list ranks them all."""
        if candidates is not self._candidates or changed is None:
            self._candidates = candidates
            self._keys = [self._key(c) for c in candidates]
            self._position = {c.name: i for i, c in enumerate(candidates)}
        else:  # ``changed`` was the last pick, so its last-stepped tick is the current one
            i = self._position[changed]
            c = candidates[i]
            self._keys[i] = (-self.priority(c), self._tick, c.index, changed)
        name = min(self._keys)[3]
        self._tick += 1
        self._last[name] = self._tick
        return name

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "tick": self._tick, "last": dict(self._last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window, self._tick, self._last = int(state["window"]), int(state["tick"]), dict(state["last"])
        self._candidates = None


class RoundRobinScheduler:
    """Each running node in pipeline order, one after another."""

    name = "round_robin"

    def __init__(self) -> None:
        self._position = -1

    def select(self, candidates: Sequence[Any], k: int) -> list[str]:
        ordered = sorted(candidates, key=lambda c: c.index)
        after = [c for c in ordered if c.index > self._position]
        rotated = (after + [c for c in ordered if c.index <= self._position])[:k]
        if rotated:
            self._position = rotated[-1].index
        return [c.name for c in rotated]

    def state_dict(self) -> dict[str, Any]:
        return {"position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._position = int(state["position"])


BUILTIN_SCHEDULERS = {"energy_drop": EnergyDropScheduler, "round_robin": RoundRobinScheduler}
