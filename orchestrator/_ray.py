"""Ray backend: each node is a Ray actor holding its plugin and its state.

Install with ``pip install sage-irp[ray]``. The orchestrator connects to a running Ray (or
starts a local one with ``ray.init()`` if none is up). Steps of the nodes chosen in one
scheduling round run concurrently in their actors; only energies and costs travel back each
step, the state stays in the actor until it is needed (bridges, checkpoints, results). The
actor serves two calls at once so that, when a step overruns its timeout, the driver can still
read the last good state before killing the actor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from sage_core import IRPState

from ._backends import Outcome
from ._faults import ERROR, TIMEOUT, Fault, advance, from_exception, probe


class _NodeWorker:
    """The actor body (wrapped by ``ray.remote`` on first use)."""

    def __init__(self, plugin: Any) -> None:
        import torch

        torch.set_num_threads(1)
        self.plugin = plugin
        self.state: IRPState | None = None

    def _set(self, state: Any) -> tuple[float, float] | Fault:
        try:
            state, energy, cost = probe(self.plugin, state)
        except Fault as fault:
            return fault
        self.state = state
        return energy, cost

    def init(self, x0: Any, ctx: dict[str, Any]) -> tuple[float, float] | Fault:
        try:
            state = self.plugin.init_state(x0, ctx)
        except Exception as exc:  # noqa: BLE001
            return from_exception(exc, "init_state()")
        return self._set(state)

    def set_state(self, state: IRPState) -> tuple[float, float] | Fault:
        return self._set(state)

    def import_state(self, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[float, float] | Fault:
        try:
            state = self.plugin.import_state(tensors, meta)
        except Exception as exc:  # noqa: BLE001
            return from_exception(exc, "import_state()")
        return self._set(state)

    def export(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.plugin.export_state(self.state)

    def receive(self, key: str, value: Any) -> tuple[float, float] | Fault:
        try:
            state = self.plugin.receive(self.state, key, value)
        except Exception as exc:  # noqa: BLE001
            return from_exception(exc, "receive()")
        return self._set(state)

    def get_state(self) -> IRPState | None:
        return self.state

    def step(self, remaining: float | None) -> Outcome | Fault:
        try:
            state, energy, cost, elapsed, verdict = advance(self.plugin, self.state, remaining)
        except Fault as fault:
            return fault
        self.state = state
        return energy, state.step, cost, elapsed, verdict


class RayBackend:
    """Nodes as Ray actors; ``address`` is passed to ``ray.init`` when Ray is not initialised yet.

    An actor lives as long as the session, so by default it reserves no CPU (``num_cpus=0``;
    a pipeline may have more nodes than the cluster has CPUs). Concurrency is bounded instead by
    ``parallel``: how many node steps one scheduling round runs at once (default: the
    cluster's CPU count).
    """

    name = "ray"

    def __init__(self, *, num_cpus: float = 0, address: str | None = None, parallel: int | None = None) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("the ray backend needs Ray: pip install 'sage-irp[ray]'") from exc
        self.ray = ray
        self.num_cpus, self.address = num_cpus, address
        self._parallel = parallel
        self.actors: dict[str, Any] = {}
        self.plugins: dict[str, Any] = {}
        self.timeouts: dict[str, float | None] = {}
        self._remote: Any = None

    @property
    def parallel(self) -> int:
        if self._parallel is not None:
            return self._parallel
        return max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def open(self, nodes: Mapping[str, Any]) -> None:
        ray = self.ray
        if not ray.is_initialized():
            # A cluster started here listens on loopback only; pass address= to join a real one.
            local = {} if self.address else {"_node_ip_address": "127.0.0.1"}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **local)
        if self._parallel is None:
            self._parallel = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=self.num_cpus, max_concurrency=2)(_NodeWorker)
        self.close()
        self.timeouts = {name: node.timeout for name, node in nodes.items()}
        self.plugins = {name: node.plugin for name, node in nodes.items()}
        self.actors = {name: self._remote.remote(node.plugin) for name, node in nodes.items()}

    def _call(self, value: Any) -> tuple[float, float]:
        if isinstance(value, Fault):
            raise value
        return value

    def init(self, name: str, x0: Any, ctx: dict[str, Any]) -> tuple[float, float]:
        return self._call(self.ray.get(self.actors[name].init.remote(x0, ctx)))

    def set_state(self, name: str, state: IRPState) -> tuple[float, float]:
        return self._call(self.ray.get(self.actors[name].set_state.remote(state)))

    def import_state(self, name: str, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[float, float]:
        return self._call(self.ray.get(self.actors[name].import_state.remote(dict(tensors), dict(meta))))

    def export(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        actor = self.actors[name]
        if isinstance(actor, _Frozen):
            return self.plugins[name].export_state(actor._state)
        return self.ray.get(actor.export.remote())

    def receive(self, name: str, key: str, value: Any) -> tuple[float, float]:
        return self._call(self.ray.get(self.actors[name].receive.remote(key, value)))

    def state(self, name: str) -> IRPState | None:
        actor = self.actors.get(name)
        return None if actor is None else self.ray.get(actor.get_state.remote())

    def step(self, requests: Sequence[tuple[str, float | None]]) -> list[Outcome | Fault]:
        ray = self.ray
        refs = [self.actors[name].step.remote(remaining) for name, remaining in requests]
        start = time.perf_counter()
        out: list[Outcome | Fault] = []
        for (name, _), ref in zip(requests, refs):
            timeout = self.timeouts.get(name)
            left = None if timeout is None else max(timeout - (time.perf_counter() - start), 0.0)
            try:
                value = ray.get(ref, timeout=left)
            except ray.exceptions.GetTimeoutError:
                out.append(Fault(TIMEOUT, f"step ran longer than {timeout:g} s"))
                self._replace(name)
                continue
            except ray.exceptions.RayError as exc:
                out.append(Fault(ERROR, f"actor of node {name!r} failed: {type(exc).__name__}: {exc}"))
                continue
            if not isinstance(value, Fault) and timeout is not None and value[3] > timeout:
                value = Fault(TIMEOUT, f"step took {value[3]:.3g} s > {timeout:g} s")
                self._replace(name)
            out.append(value)
        return out

    def _replace(self, name: str) -> None:
        """Kill a node's actor after a timeout, keeping its last good state in a fresh one."""
        ray = self.ray
        actor = self.actors[name]
        state = ray.get(actor.get_state.remote())
        ray.kill(actor, no_restart=True)
        # A stand-in that holds the last good state (for results and checkpoints); never stepped again.
        self.actors[name] = _Frozen(state)

    def close(self) -> None:
        for actor in self.actors.values():
            if not isinstance(actor, _Frozen):
                self.ray.kill(actor, no_restart=True)
        self.actors = {}


class _FrozenMethod:
    def __init__(self, value: Any) -> None:
        self.value = value

    def remote(self, *args: Any) -> Any:
        import ray

        return ray.put(self.value)


class _Frozen:
    """The last good state of a node whose actor was killed."""

    def __init__(self, state: IRPState | None) -> None:
        self.get_state = _FrozenMethod(state)
        self._state = state
