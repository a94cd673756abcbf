"""Service: the solver, the run manager and the session store behind one object."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sage_core import Registry, get_registry

from .._persist import SessionStore
from ._limits import Limits
from ._requests import SolveRequest, parse_json, parse_solve
from ._runs import RunManager
from ._solver import CancelToken, ProgressCallback, Solver, SolveResult


def default_pipelines_dir() -> Path | None:
    """``$SAGE_PIPELINES`` or the repository's ``examples/pipelines`` when it exists (read as data)."""
    env = os.environ.get("SAGE_PIPELINES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
    return here if here.is_dir() else None


class Service:
    """What ``sage serve``, the MCP server and the ``llm`` tools share: :attr:`solver` (batched
    solves), :attr:`runs` (pipeline runs in :attr:`store`) and the listings. ``store`` is a
    SessionStore or its directory (default: the SessionStore default); ``batching=False`` steps
    each solve with its own model call; ``batch_wait_s``: see :class:`Solver`."""

    def __init__(self, store: SessionStore | str | os.PathLike[str] | None = None, *,
                 registry: Registry | None = None, limits: Limits = Limits(), batching: bool = True,
                 max_batch: int = 64, batch_wait_s: float = 0.005, pipelines_dir: Path | None = None,
                 checkpoint_every: int = 50) -> None:
        self.store = store if isinstance(store, SessionStore) else SessionStore(root=store)
        self.registry = registry
        self.limits = limits
        self.solver = Solver(registry, batching=batching, max_batch=max_batch, batch_wait_s=batch_wait_s,
                             limits=limits)
        self.runs = RunManager(self.store, registry=registry, limits=limits, checkpoint_every=checkpoint_every,
                               pipelines_dir=pipelines_dir if pipelines_dir is not None else default_pipelines_dir())

    def solve(self, request: SolveRequest | Any, *, on_step: ProgressCallback | None = None,
              cancel: CancelToken | None = None, timeout: float | None = None) -> SolveResult:
        """Solve a :class:`SolveRequest`, a dict body or a JSON text (validated first; see :class:`Solver`)."""
        if isinstance(request, (str, bytes)):
            request = parse_json(request, self.limits)
        if not isinstance(request, SolveRequest):
            request = parse_solve(request, self.limits)
        return self.solver.solve(request, on_step=on_step, cancel=cancel, timeout=timeout)

    def plugins(self) -> list[dict[str, Any]]:
        """The installed plugins, as ``sage plugins --json`` lists them."""
        from sage_core.cli import plugin_rows

        return plugin_rows(self.registry or get_registry())

    def sessions(self) -> list[dict[str, Any]]:
        """Sessions in the store, most recently updated first: id, checkpoints, size, latest nodes."""
        out = []
        for info in self.store.list():
            latest = info.latest
            out.append({"id": info.id, "created": info.created, "updated": info.updated, "bytes": info.bytes,
                        "checkpoints": list(info.checkpoints),
                        "nodes": [] if latest is None else [{"name": n.name, "plugin": n.plugin, "step": n.step,
                                                             "energy": n.energy} for n in latest.nodes]})
        return out

    def close(self) -> list[str]:
        """Graceful stop: checkpoint every running run, stop the solver; the ids of the runs saved."""
        saved = self.runs.shutdown()
        self.solver.close()
        return saved
