"""The core refine loop: one plugin, one input, halting policies, trust, telemetry.

The orchestrator builds on the same pieces; this loop is what a script uses to run a single
plugin, what the conformance kit exercises, and what ``bench/overhead.py`` measures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import attrs

from .halting import HaltDecision, HaltPolicy, check_of, default_policy
from .history import EnergyHistory
from .plugin import IRPPluginProtocol, state_halt_of
from .state import IRPState
from .telemetry import HaltEvent, StepEvent, Telemetry
from .trust import TrustMetrics, trust_metrics

_NO_TELEMETRY = Telemetry()


@attrs.frozen(slots=True)
class RefineResult:
    """Outcome of :func:`refine`: final state, why it halted, its energies and trust metrics."""

    state: IRPState
    decision: HaltDecision
    history: EnergyHistory
    trust: TrustMetrics

    @property
    def energy(self) -> float:
        return self.history.energies[-1]


def refine(
    plugin: IRPPluginProtocol,
    x0: Any,
    ctx: Mapping[str, Any] | None = None,
    *,
    policy: HaltPolicy | None = None,
    budget: float | None = None,
    telemetry: Telemetry | None = None,
    session: str = "",
    state: IRPState | None = None,
) -> RefineResult:
    """Refine ``x0`` with ``plugin`` until the plugin or ``policy`` halts.

    Each step runs ``step`` then ``project`` then ``energy``; after it the policy is checked,
    then the plugin's own ``halt_state`` (on the new state) and ``halt`` (on the energies). ``budget`` caps the ATP spent (each step costs
    ``plugin.step_cost``). Pass ``state`` to continue from an imported state instead of
    calling ``init_state``. A step whose cost exceeds the ATP left is not started.
    Energy 0.0 is a value, never "missing".
    """
    policy = policy if policy is not None else default_policy()
    telemetry = telemetry if telemetry is not None else _NO_TELEMETRY
    if state is None:
        state = plugin.init_state(x0, dict(ctx or {}))
    energy = state.energy if state.energy is not None else float(plugin.energy(state))
    history = EnergyHistory(budget=budget)
    history.append(energy)
    step_fn, project_fn, energy_fn, cost_fn = plugin.step, plugin.project, plugin.energy, plugin.step_cost
    halt_fn, check, state_halt = plugin.halt, check_of(policy), state_halt_of(plugin)
    t0 = time.perf_counter()
    decision = check(history) or halt_fn(history)
    while decision is None:
        cost = cost_fn(state)
        remaining = None if budget is None else budget - history.spent
        if remaining is not None and cost > remaining:
            decision = HaltDecision("budget_exhausted", f"next step costs {cost:.6g} ATP, {remaining:.6g} left")
            break
        state = project_fn(step_fn(state, remaining))
        energy = float(energy_fn(state))
        history.append(energy, cost)
        if telemetry.active:
            energies = history.energies
            telemetry.emit(StepEvent(plugin.name, session, state.step, energy, energy - energies[-2],
                                     history.spent, time.perf_counter() - t0))
        decision = check(history) or (state_halt is not None and state_halt(state)) or halt_fn(history)
    if state.energy != energy:
        state = state.evolve(energy=energy)
    metrics = trust_metrics(history)
    if telemetry.active:
        telemetry.emit(HaltEvent(plugin.name, session, state.step, decision.reason, decision.policy,
                                 energy if math.isfinite(energy) else None, metrics.monotonicity,
                                 metrics.dE_variance, metrics.convergence_rate, history.spent,
                                 time.perf_counter() - t0))
    return RefineResult(state, decision, history, metrics)
