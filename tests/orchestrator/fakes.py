"""Test plugins (faulty, global-RNG, streaming, coupled both ways, costly, halting by state) and a session store factory."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from plugins.toy import QuadraticDescent
from sage_core import HaltDecision, IRPState

FAULTS = ("raise", "nan", "inf", "bad_type", "bad_energy_type", "timeout")


class Faulty(QuadraticDescent):
    """The toy plugin, failing with ``fault`` at step ``at`` (1-based)."""

    name = "faulty"

    def __init__(self, fault: str = "raise", at: int = 3, sleep: float = 0.5, **config: Any) -> None:
        super().__init__(**config)
        self.fault, self.at, self.sleep = fault, at, sleep

    def step(self, state: IRPState, budget: float | None = None) -> Any:
        new = super().step(state, budget)
        if new.step != self.at:
            return new
        if self.fault == "raise":
            raise RuntimeError(f"injected failure at step {self.at}")
        if self.fault in ("nan", "inf"):
            return new.evolve(x=torch.full_like(new.x, math.nan if self.fault == "nan" else math.inf))
        if self.fault == "bad_type":
            return {"x": new.x}
        if self.fault == "bad_energy_type":
            return new.evolve(meta={**new.meta, "bad": True})
        if self.fault == "timeout":
            time.sleep(self.sleep)
        return new

    def energy(self, state: IRPState) -> Any:
        if state.meta.get("bad"):
            return "low"
        return super().energy(state)


class Verdict(QuadraticDescent):
    """Halts through ``halt_state`` at step ``at`` (its energies alone never say so); with
    ``bad=True`` returns a string there instead of a HaltDecision."""

    name = "verdict"

    def __init__(self, at: int = 3, bad: bool = False, **config: Any) -> None:
        super().__init__(**config)
        self.at, self.bad = at, bad

    def halt_state(self, state: IRPState) -> Any:
        if state.step != self.at:
            return None
        return "stop" if self.bad else HaltDecision("verified", f"verdict at step {state.step}")


class GlobalNoise(QuadraticDescent):
    """Draws its noise from torch's *global* RNG, so only a restored RNG state resumes exactly."""

    name = "global_noise"

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        new = super().step(state, budget)
        return new.evolve(x=new.x + 1e-3 * torch.randn(self.dim, dtype=torch.float64))


class Costly(QuadraticDescent):
    """Each step costs ``cost`` ATP."""

    name = "costly"

    def __init__(self, cost: float = 2.5, **config: Any) -> None:
        super().__init__(**config)
        self.cost = cost

    def step_cost(self, state: IRPState) -> float:
        return self.cost


class Listener(QuadraticDescent):
    """Pulled toward the latest value streamed into context key ``hint``."""

    name = "listener"

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        state = super().init_state(x0, ctx)
        return state.evolve(carry={"hint": torch.as_tensor(ctx["hint"], dtype=torch.float64).clone()})

    def receive(self, state: IRPState, key: str, value: Any) -> IRPState:
        return state.evolve(carry={**state.carry, key: torch.as_tensor(value, dtype=torch.float64).clone()},
                            meta={**state.meta, "received": state.meta.get("received", 0) + 1})

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        new = super().step(state, budget)
        return new.evolve(x=0.9 * new.x + 0.1 * state.carry["hint"], carry=state.carry)


class Coupled(QuadraticDescent):
    """The toy quadratic plus a pull toward the latest vector received as ``peer``:
    energy 0.5 ||Ax - b||^2 + 0.5 w ||x - peer||^2, so a received value changes the energy."""

    name = "coupled"
    context_kinds = {"peer": "vector"}

    def __init__(self, weight: float = 1.0, **config: Any) -> None:
        super().__init__(**config)
        self.weight = weight

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        state = super().init_state(x0, ctx)
        peer = state.x if ctx.get("peer") is None else torch.as_tensor(ctx["peer"], dtype=torch.float64)
        return state.evolve(carry={"peer": peer.clone()})

    def receive(self, state: IRPState, key: str, value: Any) -> IRPState:
        return state.evolve(carry={key: torch.as_tensor(value, dtype=torch.float64).clone()},
                            meta={**state.meta, "received": state.meta.get("received", 0) + 1})

    def energy(self, state: IRPState) -> float:
        d = state.x - state.carry["peer"]
        return super().energy(state) + 0.5 * self.weight * float(d @ d)

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        new = super().step(state, budget)
        return new.evolve(x=new.x - self.lr * self.weight * (state.x - state.carry["peer"]), carry=state.carry)


def make_store(root: Path) -> Any:
    from persistence import SessionStore

    return SessionStore(root=root)
