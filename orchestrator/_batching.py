"""Continuous batching: many sessions of one plugin stepped together.

A :class:`BatchPool` holds sessions (an input each) of one plugin. Each round it admits waiting
sessions up to ``max_batch`` (one ``plugin.init_state_batch(x0s, ctxs)`` call when the plugin
offers it), steps every active session (one ``plugin.step_batch(states)``
call when the plugin offers it, else one ``step`` per session), checks energies (one
``energy_batch`` call if offered), applies each session's halting policy and the plugin's own
``halt``, and retires the sessions that halted so that waiting ones take their place. The HRM's
ACT carry is built for this: sessions at different segments share one forward pass.

Faults stay per session: if a batched call raises or returns the wrong number of states, that
round (or admission) is redone one session at a time, so only the faulty session fails.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

import attrs

from sage_core import EnergyHistory, HaltDecision, HaltPolicy, IRPState, default_policy

from ._faults import Fault, advance, advance_batch, from_exception, probe
from ._pipeline import policy_from_spec


@attrs.frozen(slots=True)
class PoolResult:
    """Outcome of one pooled session."""

    key: Hashable
    state: IRPState | None
    decision: HaltDecision
    fault: Fault | None
    history: EnergyHistory

    @property
    def steps(self) -> int:
        return self.history.steps

    @property
    def energy(self) -> float | None:
        return self.history.last


@attrs.define(slots=True, eq=False)
class _Session:
    key: Hashable
    x0: Any
    ctx: dict[str, Any]
    budget: float | None
    state: IRPState | None = None
    history: EnergyHistory = attrs.field(factory=EnergyHistory)
    cost: float = 1.0


class BatchPool:
    """Sessions of ``plugin`` stepped in batches of at most ``max_batch`` (see the module docstring).

    ``policy`` is a halting policy or a dict of halt options (as in a pipeline node);
    ``batched=False`` forces one call per session (for comparisons).
    """

    def __init__(self, plugin: Any, *, policy: HaltPolicy | Mapping[str, Any] | None = None, max_batch: int = 64,
                 batched: bool | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.plugin = plugin
        if policy is None:
            policy = default_policy()
        elif isinstance(policy, Mapping):
            policy = policy_from_spec(policy)
        self._check = policy.check
        self.max_batch = max_batch
        has_batch = callable(getattr(plugin, "step_batch", None))
        self.batched = has_batch if batched is None else (batched and has_batch)
        init_batch = getattr(plugin, "init_state_batch", None)
        self._init_batch = init_batch if callable(init_batch) and batched is not False else None
        self.waiting: deque[_Session] = deque()
        self.active: list[_Session] = []
        self.results: dict[Hashable, PoolResult] = {}
        self.rounds = 0
        self.steps = 0
        self._keys: set[Hashable] = set()

    def submit(self, x0: Any, ctx: Mapping[str, Any] | None = None, *, key: Hashable | None = None,
               budget: float | None = None) -> Hashable:
        """Queue a session; it joins the batch when there is room. Returns its key."""
        key = len(self._keys) if key is None else key
        if key in self._keys:
            raise ValueError(f"session key {key!r} is already in the pool")
        self._keys.add(key)
        self.waiting.append(_Session(key, x0, dict(ctx or {}), budget))
        return key

    @property
    def done(self) -> bool:
        return not self.waiting and not self.active

    def _retire(self, session: _Session, decision: HaltDecision, fault: Fault | None = None) -> None:
        self.results[session.key] = PoolResult(session.key, session.state, decision, fault, session.history)

    def _decide(self, session: _Session, verdict: HaltDecision | None = None) -> HaltDecision | None:
        history = session.history
        decision = self._check(history) or verdict or self.plugin.halt(history)
        if decision is None and session.budget is not None and session.cost > session.budget - history.spent + 1e-9:
            decision = HaltDecision("budget_exhausted", f"next step costs {session.cost:.6g} ATP, "
                                                        f"{session.budget - history.spent:.6g} left")
        return decision

    def _init_states(self, sessions: list[_Session]) -> list[Any]:
        """A fresh state (or the :class:`Fault` of making it) per session: one
        ``init_state_batch`` call when batched and offered; if that call raises or returns the
        wrong number of states, one ``init_state`` per session, so only a bad input fails."""
        plugin = self.plugin
        if self._init_batch is not None and len(sessions) > 1:
            try:
                states = list(self._init_batch([s.x0 for s in sessions], [s.ctx for s in sessions]))
                if len(states) == len(sessions):
                    return states
            except Exception:  # noqa: BLE001 - retried one by one below to isolate the bad input
                pass
        out: list[Any] = []
        for session in sessions:
            try:
                out.append(plugin.init_state(session.x0, session.ctx))
            except Exception as exc:  # noqa: BLE001
                out.append(from_exception(exc, "init_state()"))
        return out

    def _admit(self) -> None:
        while self.waiting and len(self.active) < self.max_batch:  # again if some halt at once
            room = self.max_batch - len(self.active)
            self._admit_batch([self.waiting.popleft() for _ in range(min(room, len(self.waiting)))])

    def _admit_batch(self, sessions: list[_Session]) -> None:
        for session, made in zip(sessions, self._init_states(sessions)):
            try:
                if isinstance(made, Fault):
                    raise made
                session.state, energy, session.cost = probe(self.plugin, made)
            except Fault as fault:
                self._retire(session, HaltDecision(fault.kind, fault.detail), fault)
                continue
            session.history = EnergyHistory(budget=session.budget)
            session.history.append(energy)
            decision = self._decide(session)
            if decision is not None:
                self._retire(session, decision)
            else:
                self.active.append(session)

    def step(self) -> int:
        """One round: admit, step every active session once, retire halted ones. Returns sessions stepped."""
        self._admit()
        active = self.active
        if not active:
            return 0
        self.rounds += 1
        remaining = [None if s.budget is None else s.budget - s.history.spent for s in active]
        if self.batched and len(active) > 1:
            outcomes = advance_batch(self.plugin, [s.state for s in active], remaining)
        else:
            outcomes = []
            for session, left in zip(active, remaining):
                try:
                    outcomes.append(advance(self.plugin, session.state, left))
                except Fault as fault:
                    outcomes.append(fault)
        keep: list[_Session] = []
        for session, outcome in zip(active, outcomes):
            if isinstance(outcome, Fault):
                self._retire(session, HaltDecision(outcome.kind, outcome.detail), outcome)
                continue
            session.state, energy, next_cost, _, verdict = outcome
            session.history.append(energy, session.cost)
            session.cost = next_cost
            try:
                decision = self._decide(session, verdict)
            except Exception as exc:  # noqa: BLE001
                fault = from_exception(exc, "halt()")
                self._retire(session, HaltDecision(fault.kind, fault.detail), fault)
                continue
            if decision is not None:
                self._retire(session, decision)
            else:
                keep.append(session)
        self.steps += len(active)
        self.active = keep
        return len(active)

    def run(self) -> dict[Hashable, PoolResult]:
        """Step until every session has halted; results by key."""
        while not self.done:
            self.step()
        return dict(self.results)

