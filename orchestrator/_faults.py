"""Fault isolation: one plugin step, checked; any failure becomes a Fault value, never an exception."""

from __future__ import annotations

import numbers
import time
import traceback
from collections.abc import Callable
from typing import Any

import attrs

from sage_core import HaltDecision, IRPState, state_halt_of

#: Fault kinds (the ``policy`` of the node's HaltDecision).
ERROR, NON_FINITE, BAD_TYPE, TIMEOUT, UPSTREAM = "error", "non_finite", "bad_type", "timeout", "upstream_failed"
FAULT_KINDS = (ERROR, NON_FINITE, BAD_TYPE, TIMEOUT, UPSTREAM)


@attrs.frozen(slots=True)
class Fault(Exception):
    """Why a node failed: ``kind`` (one of FAULT_KINDS), a one-line ``detail``, and the
    ``traceback`` text when the plugin raised."""

    kind: str
    detail: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def as_real(value: Any, what: str) -> float:
    """``value`` as a float if it is a real number (Python, numpy or a one-element tensor)."""
    if isinstance(value, float):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    numel = getattr(value, "numel", None)
    if callable(numel) and numel() == 1 and not getattr(value, "is_complex", lambda: False)():
        return float(value.item())
    raise Fault(BAD_TYPE, f"{what} returned {type(value).__name__}, expected a real number")


def from_exception(exc: BaseException, where: str) -> Fault:
    if isinstance(exc, Fault):
        return exc
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-4))
    return Fault(ERROR, f"{where} raised {type(exc).__name__}: {exc}", tb)


def checked_state(value: Any, what: str) -> IRPState:
    if not isinstance(value, IRPState):
        raise Fault(BAD_TYPE, f"{what} returned {type(value).__name__}, expected IRPState")
    return value


#: A checked step: (new_state, energy, next_step_cost, elapsed_s, the plugin's halt_state verdict).
Stepped = tuple[IRPState, float, float, float, HaltDecision | None]


def state_verdict(state_halt: Callable[[IRPState], Any] | None, state: IRPState) -> HaltDecision | None:
    """``state_halt(state)`` (a plugin's ``halt_state``, from :func:`state_halt_of`; ``None``
    when it has none), checked to be a HaltDecision or None; raises :class:`Fault`."""
    if state_halt is None:
        return None
    verdict = state_halt(state)
    if verdict is not None and not isinstance(verdict, HaltDecision):
        raise Fault(BAD_TYPE, f"halt_state() returned {type(verdict).__name__}, expected HaltDecision or None")
    return verdict


def advance(plugin: Any, state: IRPState, remaining: float | None) -> Stepped:
    """One checked step: ``(new_state, energy, next_step_cost, elapsed_s, verdict)``, where
    ``verdict`` is the plugin's ``halt_state`` on the new state; raises :class:`Fault`."""
    t0 = time.perf_counter()
    try:
        new = plugin.step(state, remaining)
        if not isinstance(new, IRPState):
            raise Fault(BAD_TYPE, f"step() returned {type(new).__name__}, expected IRPState")
        new = plugin.project(new)
        if not isinstance(new, IRPState):
            raise Fault(BAD_TYPE, f"project() returned {type(new).__name__}, expected IRPState")
        energy = plugin.energy(new)
        if energy.__class__ is not float:
            energy = as_real(energy, "energy()")
        if energy - energy != 0.0:
            raise Fault(NON_FINITE, f"energy is {energy!r} after step {new.step}")
        cost = plugin.step_cost(new)
        if cost.__class__ is not float:
            cost = as_real(cost, "step_cost()")
        verdict = state_verdict(state_halt_of(plugin), new)
    except Exception as exc:  # noqa: BLE001 - isolating plugin failures is the point
        raise from_exception(exc, f"step {state.step + 1}") from None
    return new, energy, cost, time.perf_counter() - t0, verdict


def probe(plugin: Any, state: IRPState) -> tuple[IRPState, float, float]:
    """Check a fresh or imported state: ``(state, energy, next_step_cost)``; raises :class:`Fault`."""
    try:
        state = checked_state(state, "init_state()")
        energy = state.energy if state.energy is not None else plugin.energy(state)
        energy = as_real(energy, "energy()")
        if energy - energy != 0.0:
            raise Fault(NON_FINITE, f"initial energy is {energy!r}")
        cost = as_real(plugin.step_cost(state), "step_cost()")
    except Exception as exc:  # noqa: BLE001
        raise from_exception(exc, "init") from None
    return state, energy, cost


def advance_batch(plugin: Any, states: list[IRPState], remaining: list[float | None]) -> list[Any]:
    """Step ``states`` in one ``plugin.step_batch`` call (and one ``project_batch`` and one
    ``energy_batch`` call if offered), with the same checks as :func:`advance`. Returns one
    ``(state, energy, next_cost, elapsed, verdict)`` or :class:`Fault` per state. If a batched
    call raises or returns the wrong number of states, the states are stepped one at a time so
    that only the faulty one fails."""
    t0 = time.perf_counter()
    try:
        new = list(plugin.step_batch(states))
        if len(new) != len(states):
            raise ValueError(f"step_batch returned {len(new)} states for {len(states)}")
        project_batch = getattr(plugin, "project_batch", None)
        if project_batch is not None and all(isinstance(s, IRPState) for s in new):
            new = list(project_batch(new))
            if len(new) != len(states):
                raise ValueError(f"project_batch returned {len(new)} states for {len(states)}")
        else:
            new = [plugin.project(s) if isinstance(s, IRPState) else s for s in new]
        energy_batch = getattr(plugin, "energy_batch", None)
        ok = [s for s in new if isinstance(s, IRPState)]
        energies = iter(list(energy_batch(ok)) if energy_batch is not None else [plugin.energy(s) for s in ok])
    except Exception:  # noqa: BLE001 - isolate the fault by stepping one at a time
        out: list[Any] = []
        for state, left in zip(states, remaining):
            try:
                out.append(advance(plugin, state, left))
            except Fault as fault:
                out.append(fault)
        return out
    elapsed = (time.perf_counter() - t0) / max(len(states), 1)
    state_halt = state_halt_of(plugin)
    out = []
    for state in new:
        if not isinstance(state, IRPState):
            out.append(Fault(BAD_TYPE, f"step_batch() returned {type(state).__name__}, expected IRPState"))
            continue
        try:
            energy = as_real(next(energies), "energy()")
            if energy - energy != 0.0:
                raise Fault(NON_FINITE, f"energy is {energy!r} after step {state.step}")
            cost = as_real(plugin.step_cost(state), "step_cost()")
            verdict = state_verdict(state_halt, state)
        except Exception as exc:  # noqa: BLE001
            out.append(from_exception(exc, f"step {state.step}"))
            continue
        out.append((state, energy, cost, elapsed, verdict))
    return out
