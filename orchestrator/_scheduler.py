"""Schedulers: which running node steps next. Replaceable (parameter or ``sage_register_backends``).

A scheduler has ``name``, ``select(candidates, k) -> list[str]`` (up to ``k`` distinct node
names among ``candidates``, best first), and ``state_dict()``/``load_state_dict(d)`` so a
resumed session schedules exactly as the uninterrupted one would. A candidate exposes
``name``, ``index`` (pipeline order), ``history`` (:class:`~sage_core.EnergyHistory`),
``next_cost`` (ATP of its next step) and ``trust``.
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappushpop
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
        #: State of :meth:`pick` (rebuilt whenever it is handed another list): the candidate
        #: list, each candidate by name, a heap of the sort keys of all candidates but the
        #: previous pick (None while a key has a NaN priority: then every key is recomputed),
        #: that pick, and whether priority() is this class's own (then pick inlines it).
        self._candidates: Sequence[Any] | None = None
        self._by_name: dict[str, Any] = {}
        self._heap: list[tuple] | None = None
        self._picked: str | None = None
        self._inline = False

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
        ``changed=None`` or another list ranks them all.

        The other candidates' keys do not change between such calls (a key depends on the
        candidate's own history and next cost, and on when it was last picked), so they wait in
        a heap: each call pushes the changed key and pops the best, O(log n) comparisons. Keys
        are distinct (pipeline order breaks ties), so the heap's best is ``min`` of all keys. A
        NaN priority (from a NaN step cost) has no order: while one is present, each call ranks
        all candidates and takes ``min`` of their keys in candidate order."""
        heap = self._heap
        if heap is not None and changed == self._picked and candidates is self._candidates:
            # ``changed`` was the last pick, so its last-stepped tick is the current one
            c = self._by_name[changed]
            if self._inline:  # self.priority(c), inlined
                energies = c.history.energies
                n = len(energies) - 1
                if n < 1:
                    priority = math.inf
                else:
                    window, cost = self.window, c.next_cost
                    w = n if n < window else window
                    priority = (energies[-1 - w] - energies[-1]) / w / (1e-12 if cost < 1e-12 else cost)
            else:
                priority = self.priority(c)
            if priority == priority:
                name = heappushpop(heap, (-priority, self._tick, c.index, changed))[3]
            else:
                name = self._rank(candidates)
        else:
            self._candidates = candidates
            self._by_name = {c.name: c for c in candidates}
            self._inline = getattr(self.priority, "__func__", None) is EnergyDropScheduler.priority
            name = self._rank(candidates)
        self._tick += 1
        self._last[name] = self._tick
        self._picked = name
        return name

    def _rank(self, candidates: Sequence[Any]) -> str:
        """Rank all candidates: the best one's name; the others' keys wait in the heap (none if a
        priority is NaN: then ``min`` in candidate order, and the next pick ranks all again)."""
        key = self._key
        keys = [key(c) for c in candidates]
        if any(k[0] != k[0] for k in keys):
            self._heap = None
            return min(keys)[3]
        heapify(keys)
        self._heap = keys
        return heappop(keys)[3]

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "tick": self._tick, "last": dict(self._last)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window, self._tick, self._last = int(state["window"]), int(state["tick"]), dict(state["last"])
        self._candidates, self._heap, self._picked = None, None, None


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
