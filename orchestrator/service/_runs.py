"""RunManager: pipeline runs as checkpointed sessions in a SessionStore, stepped in threads.

A run is an :class:`~orchestrator.Orchestrator` session whose id is the run id. Its thread steps
it round by round, keeps every telemetry event (for the SSE stream), checkpoints every
``checkpoint_every`` rounds and at the end, and stops cleanly on :meth:`RunManager.cancel` or
:meth:`RunManager.shutdown` (checkpointing first, so nothing is lost). A run found only in the
store (e.g. after a restart) reports its saved status and continues with :meth:`RunManager.resume`,
bit-identically to a run never interrupted.
"""

from __future__ import annotations

import math
import threading
import tomllib
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs

from sage_core import Registry, SageError, event_to_dict

from .._orchestrator import Orchestrator
from .._persist import SessionStore
from .._pipeline import Pipeline
from ._errors import RequestError
from ._limits import Limits
from ._requests import RunRequest
from ._solver import jsonable

RUNNING, DONE, CANCELLED, INTERRUPTED, FAILED, SAVED = "running", "done", "cancelled", "interrupted", "failed", "saved"
#: Events a run keeps for its SSE stream (older ones are dropped in halves past this).
MAX_EVENTS = 100_000
#: Finished runs kept in memory (their status and events); older ones are reported from the store.
MAX_FINISHED = 256


@attrs.define(slots=True, eq=False)
class _Run:
    id: str
    orchestrator: Orchestrator
    status: str = RUNNING
    error: str | None = None
    events: list[dict[str, Any]] = attrs.field(factory=list)
    first: int = 0  # index of events[0] in the run's whole event sequence
    cond: threading.Condition = attrs.field(factory=threading.Condition)
    stop: str | None = None
    thread: threading.Thread | None = None


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


class RunManager:
    """Starts, watches, cancels and resumes pipeline runs (see the module docstring).

    ``store``: the SessionStore runs live in; ``pipelines_dir``: where ``{"pipeline": NAME}``
    finds ``NAME.toml`` (default: none, only TOML text); ``checkpoint_every``: rounds between
    checkpoints; ``limits.max_runs``: runs stepping at once (503 beyond).
    """

    def __init__(self, store: SessionStore, *, registry: Registry | None = None, pipelines_dir: Path | None = None,
                 limits: Limits = Limits(), checkpoint_every: int = 50) -> None:
        self.store = store
        self.registry = registry
        self.pipelines_dir = None if pipelines_dir is None else Path(pipelines_dir)
        self.limits = limits
        self.checkpoint_every = checkpoint_every
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- pipelines ---------------------------------------------------------------------------
    def pipelines(self) -> list[str]:
        """Names of the pipelines ``{"pipeline": NAME}`` can start."""
        if self.pipelines_dir is None or not self.pipelines_dir.is_dir():
            return []
        return sorted(p.stem for p in self.pipelines_dir.glob("*.toml"))

    def _pipeline(self, request: RunRequest) -> Pipeline:
        if request.pipeline is not None:
            if request.pipeline not in self.pipelines():
                raise RequestError(f"no pipeline {request.pipeline!r}; available: {self.pipelines()} "
                                   "(or send the pipeline text as 'toml')", field="pipeline", status=404)
            text, field = (self.pipelines_dir / f"{request.pipeline}.toml").read_text(encoding="utf-8"), "pipeline"
        else:
            text, field = request.toml, "toml"
        try:
            return Pipeline.from_dict(tomllib.loads(text), registry=self.registry)
        except tomllib.TOMLDecodeError as exc:
            raise RequestError(f"not valid TOML: {exc}", field=field) from None
        except (SageError, ValueError, TypeError, KeyError) as exc:
            raise RequestError(f"bad pipeline: {exc}", field=field) from None

    # -- lifecycle ---------------------------------------------------------------------------
    def _admit(self, run_id: str | None = None) -> None:
        if self._closed:
            raise RequestError("the server is shutting down; retry on another instance", status=503, retry_after=1.0)
        running = sum(r.status == RUNNING for r in self._runs.values())
        if running >= self.limits.max_runs:
            raise RequestError(f"{running} runs are stepping, the limit is {self.limits.max_runs}; retry later",
                               status=503, retry_after=5.0)
        if run_id is not None and run_id in self._runs and self._runs[run_id].status == RUNNING:
            raise RequestError(f"run {run_id!r} is already running", field="id", status=409)

    def start(self, request: RunRequest) -> str:
        """Build the pipeline, start its session in the store and step it, in the run's own
        thread (see :meth:`_open`); the run id."""
        return self._open(lambda: self._start(request))

    def resume(self, run_id: str) -> str:
        """Continue a saved run from its latest checkpoint (409 if it is running or finished)."""
        return self._open(lambda: self._resume(run_id))

    def _open(self, begin: Callable[[], _Run]) -> str:
        """Call ``begin`` (build and start a run, or raise a RequestError) in a new thread that
        then steps the run to its end; wait for the run's id or the error.

        Why all of it in that thread: the plugins' torch work (building a pipeline makes its
        plugins, starting makes their states) opens an OpenMP thread team in the thread that
        does it, kept for that thread's life. Done in the event loop's thread, that team would
        outlive the run, and with more OpenMP threads than cores OpenMP throttles the spinning
        of every team: the solver's batched forward then took 3x as long (sudoku4 batch 64,
        two threads: 36 against 12 ms). The run's thread ends with the run, its team with it."""
        opened: Future[_Run] = Future()

        def body() -> None:
            try:
                run = begin()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                opened.set_exception(exc)
                return
            opened.set_result(run)
            self._drive(run)

        threading.Thread(target=body, name="sage-run", daemon=True).start()
        return opened.result().id

    def _start(self, request: RunRequest) -> _Run:
        pipeline = self._pipeline(request)
        orchestrator = Orchestrator(pipeline, registry=self.registry)
        with self._lock:
            self._admit()
            try:
                run_id = orchestrator.start(request.inputs, request.budget, store=self.store)
            except (SageError, ValueError, TypeError) as exc:
                orchestrator.close()
                raise RequestError(f"cannot start the run: {exc}", field="inputs") from None
            return self._launch(_Run(run_id, orchestrator))

    def _resume(self, run_id: str) -> _Run:
        with self._lock:
            self._admit(run_id)
            saved = self._saved(run_id)
            if saved["status"] == DONE:
                raise RequestError(f"run {run_id!r} has finished; nothing to resume", field="id", status=409)
            try:
                orchestrator = Orchestrator.from_store(self.store, run_id, registry=self.registry)
            except SageError as exc:
                raise RequestError(f"cannot resume run {run_id!r}: {exc}", field="id", status=409) from None
            return self._launch(_Run(run_id, orchestrator))

    def _launch(self, run: _Run) -> _Run:
        """Register ``run`` as stepped by the calling thread (holding the lock)."""
        self._runs.pop(run.id, None)
        finished = [key for key, r in self._runs.items() if r.status != RUNNING]
        for key in finished[:max(0, len(finished) - MAX_FINISHED + 1)]:
            del self._runs[key]
        run.thread = threading.current_thread()
        run.thread.name = f"sage-run-{run.id}"
        self._runs[run.id] = run
        return run

    def _publish(self, run: _Run, events: list[dict[str, Any]], status: str | None = None) -> None:
        with run.cond:
            run.events.extend(events)
            if len(run.events) > MAX_EVENTS:
                drop = len(run.events) // 2
                del run.events[:drop]
                run.first += drop
            if status is not None:
                run.status = status
            run.cond.notify_all()

    def _drive(self, run: _Run) -> None:
        o, rounds = run.orchestrator, 0
        try:
            while not o.done:
                if run.stop is not None:
                    o.checkpoint(self.store)
                    self._publish(run, [{"kind": "end", "status": run.stop}], run.stop)
                    return
                self._publish(run, [jsonable(event_to_dict(e)) for e in o.step()])
                rounds += 1
                if rounds % self.checkpoint_every == 0:
                    o.checkpoint(self.store)
            o.finish()
            o.checkpoint(self.store)
            self._publish(run, [{"kind": "end", "status": DONE}], DONE)
        except Exception as exc:  # noqa: BLE001 - the run fails, the server keeps going
            run.error = f"{type(exc).__name__}: {exc}"
            self._publish(run, [{"kind": "end", "status": FAILED, "error": run.error}], FAILED)
        finally:
            o.close()

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Stop a running run after its current round (checkpointed; resumable); its status."""
        run = self._runs.get(run_id)
        if run is None:
            self._saved(run_id)
            raise RequestError(f"run {run_id!r} is not running in this server", field="id", status=409)
        if run.status == RUNNING:
            run.stop = CANCELLED
            run.thread.join(timeout=30)
        return self.status(run_id)

    def shutdown(self, timeout: float = 30.0) -> list[str]:
        """Stop every running run, checkpointing it (status ``interrupted``); their ids."""
        with self._lock:
            self._closed = True
            running = [r for r in self._runs.values() if r.status == RUNNING]
        for run in running:
            run.stop = INTERRUPTED
        for run in running:
            run.thread.join(timeout=timeout)
        return [r.id for r in running]

    # -- status and events ---------------------------------------------------------------------
    def _saved(self, run_id: str) -> dict[str, Any]:
        try:
            snapshot = self.store.load(run_id)
        except SageError as exc:
            raise RequestError(f"no run {run_id!r}: {exc}", field="id", status=404) from None
        data = snapshot.orchestrator
        nodes = {}
        for name, node in data["nodes"].items():
            energies = node["energies"]
            nodes[name] = {"plugin": node["plugin"], "status": node["status"], "steps": max(len(energies) - 1, 0),
                           "energy": _number(energies[-1]) if energies else None, "atp_spent": node["spent"],
                           "reason": None if node["decision"] is None else node["decision"][0],
                           "detail": None if node["decision"] is None else node["decision"][1]}
        return {"id": run_id, "status": DONE if data["done"] else SAVED, "rounds": data["rounds"],
                "budget": data["budget"], "nodes": nodes, "error": None}

    def status(self, run_id: str) -> dict[str, Any]:
        """``{"id", "status", "rounds", "budget", "nodes": {name: {...}}, "error"}`` of a run;
        status is running, done, cancelled, interrupted, failed, or saved (in the store only)."""
        run = self._runs.get(run_id)
        if run is None:
            return self._saved(run_id)
        o = run.orchestrator
        nodes = {}
        for name, r in list(o.runs.items()):
            node = {"plugin": r.node.plugin_name, "status": r.status, "steps": r.history.steps,
                    "energy": _number(r.history.last), "atp_spent": r.history.spent,
                    "reason": None if r.decision is None else r.decision.policy,
                    "detail": None if r.decision is None else r.decision.reason}
            solution = getattr(r.node.plugin, "solution", None)
            if callable(solution) and run.status != RUNNING:
                state = o.backend.state(name)
                if state is not None:
                    try:
                        node["answer"] = jsonable(solution(state))
                    except Exception:  # noqa: BLE001 - an answer is extra; the status stands without it
                        pass
            nodes[name] = node
        return {"id": run_id, "status": run.status, "rounds": o.rounds, "budget": o.budget, "nodes": nodes,
                "error": run.error}

    def events(self, run_id: str, after: int = 0,
               timeout: float | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Events of a run from index ``after`` on, waiting up to ``timeout`` s for new ones;
        and whether the run has stopped (no more events will come). See :meth:`events_from`."""
        _, events, stopped = self.events_from(run_id, after, timeout)
        return events, stopped

    def events_from(self, run_id: str, after: int = 0,
                    timeout: float | None = None) -> tuple[int, list[dict[str, Any]], bool]:
        """:meth:`events` with the index of the first event returned: ``after``, or the oldest
        event kept when a very long run dropped older ones (``MAX_EVENTS``)."""
        run = self._runs.get(run_id)
        if run is None:
            self._saved(run_id)
            return after, [], True
        with run.cond:
            if run.first + len(run.events) <= after and run.status == RUNNING:
                run.cond.wait(timeout)
            start = max(after, run.first)
            return start, run.events[start - run.first:], run.status != RUNNING

    def list(self) -> list[dict[str, Any]]:  # noqa: A003 - the API name
        """Runs this server knows in memory: id and status."""
        return [{"id": r.id, "status": r.status} for r in self._runs.values()]

