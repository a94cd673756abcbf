"""Execution backends: where node states live and where their steps run.

A backend holds one state per node and answers ``init``, ``step`` (a batch of node steps that
may run concurrently), ``state``, ``set_state`` and ``receive``. Every plugin failure comes
back as a :class:`~orchestrator._faults.Fault`; the previous state is kept.

- ``inline`` (default): steps run in the calling thread, one at a time; deterministic. A node
  with a ``timeout`` runs its steps on a watchdog thread so a hung step can be abandoned.
- ``threads``: the scheduler picks up to ``workers`` nodes per round and their steps run on a
  thread pool (useful when steps release the GIL, as torch ops do); results are applied in the
  scheduler's order, so deterministic plugins give the same results as inline.
- ``ray``: each node is a Ray actor holding its plugin and state (see :class:`RayBackend`).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Mapping, Sequence
from typing import Any

from sage_core import HaltDecision, IRPState

from ._faults import TIMEOUT, Fault, advance, from_exception, probe

#: A successful step: (energy, step, next_step_cost, elapsed_s, the plugin's halt_state verdict).
#: A failed one is a Fault.
Outcome = tuple[float, int, float, float, HaltDecision | None]


class InlineBackend:
    """Steps in the caller's thread (see the module docstring)."""

    name = "inline"
    parallel = 1

    def __init__(self) -> None:
        self.plugins: dict[str, Any] = {}
        self.timeouts: dict[str, float | None] = {}
        self.states: dict[str, IRPState] = {}
        self._watchdog: cf.ThreadPoolExecutor | None = None

    def open(self, nodes: Mapping[str, Any]) -> None:
        self.plugins = {name: node.plugin for name, node in nodes.items()}
        self.timeouts = {name: node.timeout for name, node in nodes.items()}
        self.states = {}

    def init(self, name: str, x0: Any, ctx: dict[str, Any]) -> tuple[float, float]:
        plugin = self.plugins[name]
        try:
            state = plugin.init_state(x0, ctx)
        except Exception as exc:  # noqa: BLE001
            raise from_exception(exc, "init_state()") from None
        return self._set(name, state)

    def _set(self, name: str, state: IRPState) -> tuple[float, float]:
        state, energy, cost = probe(self.plugins[name], state)
        self.states[name] = state
        return energy, cost

    def set_state(self, name: str, state: IRPState) -> tuple[float, float]:
        return self._set(name, state)

    def state(self, name: str) -> IRPState | None:
        return self.states.get(name)

    def export(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.plugins[name].export_state(self.states[name])

    def import_state(self, name: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[float, float]:
        return self._set(name, self.plugins[name].import_state(tensors, meta))

    def receive(self, name: str, key: str, value: Any) -> tuple[float, float]:
        try:
            state = self.plugins[name].receive(self.states[name], key, value)
        except Exception as exc:  # noqa: BLE001
            raise from_exception(exc, "receive()") from None
        return self._set(name, state)

    def step_one(self, name: str, remaining: float | None) -> Outcome | Fault:
        timeout = self.timeouts.get(name)
        if timeout is None:
            try:
                state, energy, cost, elapsed, verdict = advance(self.plugins[name], self.states[name], remaining)
            except Fault as fault:
                return fault
        else:
            if self._watchdog is None:
                self._watchdog = cf.ThreadPoolExecutor(1, thread_name_prefix="sage-watchdog")
            future = self._watchdog.submit(advance, self.plugins[name], self.states[name], remaining)
            try:
                state, energy, cost, elapsed, verdict = future.result(timeout)
            except cf.TimeoutError:
                self._watchdog.shutdown(wait=False)  # abandon the hung step; its result is dropped
                self._watchdog = None
                return Fault(TIMEOUT, f"step {self.states[name].step + 1} ran longer than {timeout:g} s")
            except Fault as fault:
                return fault
            if elapsed > timeout:
                return Fault(TIMEOUT, f"step {self.states[name].step + 1} took {elapsed:.3g} s > {timeout:g} s")
        self.states[name] = state
        return energy, state.step, cost, elapsed, verdict

    def step(self, requests: Sequence[tuple[str, float | None]]) -> list[Outcome | Fault]:
        return [self.step_one(name, remaining) for name, remaining in requests]

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.shutdown(wait=False)
            self._watchdog = None


class ThreadBackend(InlineBackend):
    """Steps up to ``workers`` nodes at once on a thread pool; per-step timeouts are preemptive."""

    name = "threads"

    def __init__(self, workers: int = 2) -> None:
        super().__init__()
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.parallel = workers
        self._pool: cf.ThreadPoolExecutor | None = None

    def step(self, requests: Sequence[tuple[str, float | None]]) -> list[Outcome | Fault]:
        if len(requests) == 1 and self.timeouts.get(requests[0][0]) is None:
            return [self.step_one(*requests[0])]
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(self.parallel, thread_name_prefix="sage-node")
        futures = [self._pool.submit(advance, self.plugins[name], self.states[name], remaining)
                   for name, remaining in requests]
        out: list[Outcome | Fault] = []
        abandoned = False
        for (name, _), future in zip(requests, futures):
            timeout = self.timeouts.get(name)
            try:
                state, energy, cost, elapsed, verdict = future.result(timeout)
            except cf.TimeoutError:
                abandoned = True
                out.append(Fault(TIMEOUT, f"step {self.states[name].step + 1} ran longer than {timeout:g} s"))
                continue
            except Fault as fault:
                out.append(fault)
                continue
            if timeout is not None and elapsed > timeout:
                out.append(Fault(TIMEOUT, f"step {self.states[name].step + 1} took {elapsed:.3g} s > {timeout:g} s"))
                continue
            self.states[name] = state
            out.append((energy, state.step, cost, elapsed, verdict))
        if abandoned:
            self._pool.shutdown(wait=False)
            self._pool = None
        return out

    def close(self) -> None:
        super().close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def make_backend(spec: Any, registry: Any = None) -> Any:
    """A backend from an instance, a built-in name, or a name registered via ``sage_register_backends``."""
    if spec is None or spec == "inline":
        return InlineBackend()
    if not isinstance(spec, str):
        return spec
    if spec == "threads":
        return ThreadBackend()
    if spec == "ray":
        from ._ray import RayBackend

        return RayBackend()
    if registry is not None:
        factory = registry.get("backend", spec)
        return factory()
    raise ValueError(f"unknown backend {spec!r}; built in: inline, threads, ray")
