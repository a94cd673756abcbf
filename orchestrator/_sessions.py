"""Many sessions of one pipeline, with continuous batching across sessions.

:func:`run_sessions` keeps up to ``max_active`` sessions (one :class:`Orchestrator` each, all
sharing the pipeline's plugin instances and one :class:`TrustStore`) and runs them in lockstep:
each round every active session's scheduler picks its node(s), the requests are grouped by
node, and a node whose plugin offers ``step_batch`` is stepped for all those sessions in one
call. A finished session leaves and the next waiting one starts in its place. Results are the
same as running each session alone (up to the float rounding of the batched arithmetic).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._backends import InlineBackend
from ._faults import advance_batch
from ._orchestrator import NodeRun, Orchestrator, Result
from ._pipeline import Pipeline
from ._trust import TrustStore


@attrs.define
class SessionStats:
    """What :func:`run_sessions` did: rounds, node steps, batched calls and their sizes."""

    rounds: int = 0
    steps: int = 0
    batched_calls: int = 0
    batched_steps: int = 0


def run_sessions(pipeline: Pipeline, inputs: Sequence[Mapping[str, Any] | None], *, budget: float | None = None,
                 max_active: int = 64, scheduler: Any = None, trust: TrustStore | None = None,
                 batched: bool = True, stats: SessionStats | None = None) -> list[Result]:
    """Run one session of ``pipeline`` per entry of ``inputs`` (see the module docstring)."""
    if max_active < 1:
        raise ValueError(f"max_active must be >= 1, got {max_active}")
    trust = trust if trust is not None else TrustStore()
    stats = stats if stats is not None else SessionStats()
    waiting = deque(enumerate(inputs))
    active: dict[int, Orchestrator] = {}
    results: dict[int, Result] = {}
    while waiting or active:
        while waiting and len(active) < max_active:
            index, session_inputs = waiting.popleft()
            orchestrator = Orchestrator(pipeline, scheduler=scheduler, backend=InlineBackend(), trust=trust)
            orchestrator.start(session_inputs, budget)
            active[index] = orchestrator
        stats.rounds += 1
        plans: list[tuple[Orchestrator, list[NodeRun], list[float]]] = []
        groups: dict[str, list[tuple[Orchestrator, NodeRun]]] = {}
        for index in list(active):
            orchestrator = active[index]
            if orchestrator.done:
                results[index] = orchestrator.finish()
                del active[index]
                continue
            chosen = orchestrator._plan()
            if chosen:
                plans.append((orchestrator, chosen, [run.next_cost for run in chosen]))
                for run in chosen:
                    groups.setdefault(run.name, []).append((orchestrator, run))
        outcomes: dict[tuple[int, str], Any] = {}
        for name, members in groups.items():
            node = pipeline.node(name)
            stats.steps += len(members)
            if batched and len(members) > 1 and node.timeout is None and callable(getattr(node.plugin, "step_batch", None)):
                backends = [o.backend for o, _ in members]
                results_batch = advance_batch(node.plugin, [b.states[name] for b in backends],
                                              [run.remaining for _, run in members])
                stats.batched_calls += 1
                stats.batched_steps += len(members)
                for (orchestrator, run), backend, outcome in zip(members, backends, results_batch):
                    if isinstance(outcome, tuple):
                        state, energy, cost, elapsed, verdict = outcome
                        backend.states[name] = state
                        outcome = (energy, state.step, cost, elapsed, verdict)
                    outcomes[(id(orchestrator), name)] = outcome
            else:
                for orchestrator, run in members:
                    outcomes[(id(orchestrator), name)] = orchestrator.backend.step_one(name, run.remaining)
        for orchestrator, chosen, costs in plans:
            orchestrator._commit(chosen, costs, [outcomes[(id(orchestrator), run.name)] for run in chosen])
    return [results[i] for i in range(len(inputs))]
