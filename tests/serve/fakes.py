"""Test plugins for the service: a countdown on a grid (slow on demand, batch calls counted) and a
slow noisy toy for runs that must be interrupted mid-way."""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from plugins.toy import QuadraticDescent
from sage_core import HaltDecision, IRPPlugin, IRPState


class Countdown(IRPPlugin):
    """Energy = the grid's sum minus the steps taken; one step lowers it by one. ``delay`` seconds
    per step or batch call; ``calls`` counts step and step_batch calls and ``batch_sizes`` lists the
    sessions of each step_batch call (class-wide, reset by tests)."""

    name = "countdown"
    version = "1.0.0"
    delay = 0.0
    calls = {"step": 0, "step_batch": 0}
    batch_sizes: list[int] = []

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        total = sum(sum(row) for row in x0)
        if total == 0:
            raise ValueError("countdown needs a grid with a non-zero sum")
        return IRPState(x=torch.tensor([float(total)]), meta={"seed": int(ctx.get("seed", 0))})

    def energy(self, state: IRPState) -> float:
        return float(state.x[0])

    def _one(self, state: IRPState) -> IRPState:
        return IRPState(x=state.x - 1, step=state.step + 1, meta=state.meta)

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        type(self).calls["step"] += 1
        time.sleep(self.delay)
        return self._one(state)

    def step_batch(self, states: list[IRPState]) -> list[IRPState]:
        type(self).calls["step_batch"] += 1
        type(self).batch_sizes.append(len(states))
        time.sleep(self.delay)
        return [self._one(s) for s in states]

    def halt(self, history: Any) -> HaltDecision | None:
        return HaltDecision("verified", "counted down to zero") if history.last <= 0 else None

    @staticmethod
    def solution(state: IRPState) -> int:
        return int(state.x[0])


class ThreadRecorder(QuadraticDescent):
    """The toy, noting the thread that builds it and the one that makes its initial state."""

    name = "thread_recorder"
    threads: list[threading.Thread] = []

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        type(self).threads.append(threading.current_thread())

    def init_state(self, x0: Any, ctx: Any) -> IRPState:
        type(self).threads.append(threading.current_thread())
        return super().init_state(x0, ctx)


class SlowToy(QuadraticDescent):
    """The noisy toy, ``delay`` seconds per step (so a run can be stopped half-way)."""

    name = "slow_toy"
    delay = 0.002

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        time.sleep(self.delay)
        return super().step(state, budget)
