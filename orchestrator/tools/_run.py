"""Running a tool call: one plugin session through a BatchPool, or a pipeline as a stored session.

Both report every refinement step to the call's progress callback and check its cancel flag
before every step: a cancelled solve stops where it is; a cancelled pipeline run is
checkpointed, so ``run_pipeline`` with its ``session`` resumes it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sage_core import HaltDecision, HaltEvent, Registry, StepEvent

from .._batching import BatchPool, PoolResult
from .._orchestrator import Orchestrator, OrchestratorError
from .._pipeline import Pipeline

if TYPE_CHECKING:
    from ._catalogue import Call

#: Pipelines by name: the TOML files of the repository's examples/pipelines.
PIPELINES_DIR = Path(__file__).resolve().parents[2] / "examples" / "pipelines"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _energy_text(energy: float | None) -> str:
    return "-" if energy is None else f"{energy:.6g}"


def solve_session(plugin: Any, x0: Any, ctx: Mapping[str, Any], max_steps: int, call: Call) -> PoolResult:
    """Refine one session of ``plugin`` to its halt (at most ``max_steps`` steps), reporting
    each step; a set cancel flag stops it with halt reason ``cancelled``."""
    pool = BatchPool(plugin, policy={"max_steps": max_steps}, max_batch=1)
    pool.submit(x0, ctx, key=0)
    reported = 0
    while not pool.done:
        if call.cancel.is_set() and pool.active:
            session = pool.active[0]
            return PoolResult(0, session.state, HaltDecision("cancelled", "cancelled by the caller"), None,
                              session.history)
        pool.step()
        history = pool.results[0].history if pool.done else pool.active[0].history
        for step in range(reported + 1, history.steps + 1):
            call.report(f"step {step}: energy {_energy_text(history.energies[step])}")
        reported = history.steps
    result = pool.results[0]
    if result.state is not None:
        call.report(f"halted: {result.decision.policy} after {result.steps} step(s), "
                    f"energy {_energy_text(result.energy)}", call.reports + 1)
    return result


def _pipeline(arguments: Mapping[str, Any], registry: Registry, pipelines_dir: Path | None) -> Pipeline:
    name, text = arguments.get("pipeline"), arguments.get("toml")
    if (name is None) == (text is None):
        raise ValueError("give exactly one of 'pipeline' (a name) or 'toml' (the text of a pipeline file), "
                         "or 'session' to resume")
    if text is not None:
        if not isinstance(text, str):
            raise ValueError(f"toml: expected the text of a pipeline file, got {type(text).__name__}")
        try:
            return Pipeline.from_dict(tomllib.loads(text), registry=registry)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"toml: not valid TOML: {exc}") from None
    folder = Path(pipelines_dir or PIPELINES_DIR)
    known = sorted(p.stem for p in folder.glob("*.toml"))
    if not isinstance(name, str) or not _NAME.match(name) or name not in known:
        raise ValueError(f"pipeline: unknown pipeline {name!r}; available: {', '.join(known) or 'none'}")
    return Pipeline.from_toml(folder / f"{name}.toml", registry=registry)


def run_pipeline(arguments: Mapping[str, Any], call: Call, *, registry: Registry, store: Any = None,
                 pipelines_dir: Path | None = None) -> dict[str, Any]:
    """Run (or, with ``session``, resume) a pipeline as a checkpointed session; ValueError
    names a bad argument."""
    from persistence import SessionError, SessionStore

    store = store if store is not None else SessionStore()
    budget = arguments.get("budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0):
        raise ValueError(f"budget: must be a number of ATP >= 0, got {budget!r}")
    inputs = arguments.get("inputs", {})
    if not isinstance(inputs, Mapping):
        raise ValueError(f"inputs: expected an object of input values by node name, got {type(inputs).__name__}")
    try:
        if "session" in arguments:
            orchestrator = Orchestrator.from_store(store, str(arguments["session"]), registry=registry)
        else:
            orchestrator = Orchestrator(_pipeline(arguments, registry, pipelines_dir), registry=registry)
            orchestrator.start(dict(inputs), budget=budget, store=store)
    except (SessionError, OrchestratorError) as exc:
        raise ValueError(f"session: {exc}") from None
    steps = 0
    while not orchestrator.done:
        if call.cancel.is_set():
            orchestrator.checkpoint(store)
            return {"session": orchestrator.session, "status": "stopped", "steps": steps}
        for event in orchestrator.step():
            if isinstance(event, StepEvent):
                steps += 1
                call.report(f"{event.plugin} step {event.step}: energy {_energy_text(event.energy)}")
            elif isinstance(event, HaltEvent):
                call.report(f"{event.plugin} halted: {event.policy} after {event.step} step(s)")
    result = orchestrator.finish()
    orchestrator.checkpoint(store)
    return {"status": "finished", "steps": steps, **result.to_dict()}
