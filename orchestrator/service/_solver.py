"""Solver: concurrent solve requests stepped together through one BatchPool per plugin.

One worker thread owns the pools. Each round it admits the requests submitted since the last
round, drops cancelled ones and ones that waited past the queue deadline, steps every pool once
(one batched model call per pool when batching is on), reports each new step to the request's
progress callback and resolves the requests whose sessions halted. Callers get a
``concurrent.futures.Future`` (:meth:`Solver.submit`), a blocking call (:meth:`Solver.solve`) or
an awaitable (:meth:`Solver.solve_async`).
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import attrs
import numpy as np

from sage_core import Registry, StepEvent, get_registry

from .._batching import BatchPool, PoolResult
from .._pipeline import policy_from_spec
from ._errors import Cancelled, RequestError
from ._limits import Limits
from ._requests import SolveRequest, parse_puzzle

#: Called from the solver's worker thread once per refinement step of the request's session.
ProgressCallback = Callable[[StepEvent], None]

_IDLE_WAIT_S = 0.05
#: Per round, the solves recently in flight decay by this factor (see :meth:`Solver._gather`).
_PEAK_DECAY = 0.9
#: Session ids: 48 random bits as uuid4().hex[:12] gave, from a generator of the solver's own
#: (seeded from the OS; a plugin that seeds ``random`` cannot make ids repeat), without a syscall per id.
_IDS = random.Random()


class CancelToken:
    """Set by the caller to stop a solve or run; the worker checks it before every round.
    (A flag: setting and reading an attribute is atomic in CPython; one is made per request.)"""

    __slots__ = ("_cancelled",)

    def __init__(self) -> None:
        self._cancelled = False

    def cancel(self) -> None:
        """Ask for the work to stop (idempotent)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays, tensors and numpy scalars turned into lists and Python numbers,
    and NaN or infinite floats into None (strict JSON, as browsers parse it)."""
    if type(value) is np.ndarray and value.dtype.kind in "biu":
        return value.tolist()  # an integer or bool array (an answer grid): no float to check
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return jsonable(tolist())
    return value


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve ``future`` unless the caller cancelled it meanwhile (it may, from any thread)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


def _answer(plugin: Any, state: Any) -> Any:
    """The plugin's answer in its user format: ``solution(state)``, else ``output(state)`` (a
    reader's grid, an explainer's text); None without either or without a state."""
    read = getattr(plugin, "solution", None) or getattr(plugin, "output", None)
    return read(state) if callable(read) and state is not None else None


@attrs.frozen(slots=True)
class SolveResult:
    """The outcome of one solve: the ``answer`` in the plugin's user format (e.g. a grid),
    its ``energy``, whether the plugin ``verified`` it, the ``segments`` (steps) used, the halt
    ``reason`` and ``detail``, the ``session`` id its progress events carry, wall time, and the
    puzzle ``read`` off an image, and the ``claims`` of a text answer with the checker's verdict
    (``[{"claim", "true"}]``; None unless the plugin exposes ``checked_claims(state)``)."""

    session: str
    plugin: str
    answer: Any
    energy: float | None
    verified: bool
    segments: int
    reason: str
    detail: str
    elapsed_s: float
    read: Any = None  # the puzzle as read off the request's image (None for a puzzle sent as such)
    claims: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the result (``attrs.asdict``: the fields in order, containers copied)."""
        answer, read, claims = self.answer, self.read, self.claims
        if not (_plain(answer) and _plain(read) and _plain(claims)):
            return attrs.asdict(self)  # an attrs value or a tuple inside: asdict's conversions
        # what asdict returns for plain JSON data, at a fraction of its cost (one per response)
        return {"session": self.session, "plugin": self.plugin, "answer": _copy(answer), "energy": self.energy,
                "verified": self.verified, "segments": self.segments, "reason": self.reason, "detail": self.detail,
                "elapsed_s": self.elapsed_s, "read": _copy(read), "claims": _copy(claims)}


_LEAVES = frozenset((type(None), bool, int, float, str))


def _plain(value: Any) -> bool:
    """``value`` is JSON data in lists and dicts alone (no tuple, array or attrs instance)."""
    kind = type(value)
    if kind in _LEAVES:
        return True
    if kind is list:
        return all(type(v) in _LEAVES or _plain(v) for v in value)
    if kind is dict:
        return all(type(k) in _LEAVES and _plain(v) for k, v in value.items())
    return False


def _copy(value: Any) -> Any:
    """A copy of plain JSON data, as ``attrs.asdict`` gives (new lists and dicts, the same leaves)."""
    kind = type(value)
    if kind is list:
        return [v if type(v) in _LEAVES else _copy(v) for v in value]
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


@attrs.define(slots=True, eq=False)
class _Job:
    id: str
    request: SolveRequest
    future: Future
    on_step: ProgressCallback | None
    cancel: CancelToken
    submitted: float
    reported: int = 0
    read: Any = None


class Solver:
    """Solves :class:`SolveRequest` values with continuous batching (see the module docstring).

    ``batching=False`` steps each session with its own model call (the comparison baseline);
    ``max_batch`` caps the sessions stepped together per plugin; ``batch_wait_s`` is the longest
    a round waits for the clients it just answered to send their next solves (see
    :meth:`_gather`; 0 never waits); ``limits`` gives the queue size and deadline (503 past
    them) and the step ceiling.
    """

    def __init__(self, registry: Registry | None = None, *, batching: bool = True, max_batch: int = 64,
                 batch_wait_s: float = 0.005, limits: Limits = Limits()) -> None:
        if not batch_wait_s >= 0:
            raise ValueError(f"batch_wait_s must be >= 0 seconds, got {batch_wait_s!r}")
        self.registry = registry
        self.batching = batching
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self._peak = 0.0  # solves in flight lately (decaying maximum), for _gather
        self.limits = limits
        self._policy = policy_from_spec({"max_steps": limits.max_steps})  # one for every pool (frozen)
        self._inbox: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}
        self._pools: dict[str, BatchPool] = {}
        self._plugins: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._closed = False
        #: Requests resolved so far, by outcome (solved, refused, cancelled, rejected, failed).
        self.counts = dict.fromkeys(("solved", "refused", "cancelled", "rejected", "failed"), 0)
        self._thread = threading.Thread(target=self._work, name="sage-solver", daemon=True)
        self._thread.start()

    # -- public API ------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Requests queued or being stepped."""
        return len(self._jobs)

    def submit(self, request: SolveRequest, *, on_step: ProgressCallback | None = None,
               cancel: CancelToken | None = None) -> Future:
        """Queue ``request``; a Future of its :class:`SolveResult` (or a :class:`RequestError`:
        422 for a puzzle the plugin refuses, 503 when the queue is full or its deadline passed,
        :class:`Cancelled` when ``cancel`` is set). Raises 503 at once when the queue is full.
        Cancelling the Future also cancels the solve."""
        with self._cond:
            if self._closed:
                raise RequestError("the server is shutting down; retry on another instance", status=503,
                                   retry_after=1.0)
            if len(self._jobs) >= self.limits.max_queue:
                self.counts["rejected"] += 1
                raise RequestError(f"{len(self._jobs)} solves are queued, the limit is {self.limits.max_queue}; "
                                   "retry shortly", status=503, retry_after=1.0)
            job = _Job(f"{_IDS.getrandbits(48):012x}", request, Future(), on_step, cancel or CancelToken(),
                       time.monotonic())
            self._jobs[job.id] = job
            self._inbox.append(job)
            self._cond.notify()
        return job.future

    def solve(self, request: SolveRequest, *, on_step: ProgressCallback | None = None,
              cancel: CancelToken | None = None, timeout: float | None = None) -> SolveResult:
        """Solve ``request`` and wait for it (see :meth:`submit` for the errors it raises)."""
        return self.submit(request, on_step=on_step, cancel=cancel).result(timeout)

    async def solve_async(self, request: SolveRequest, *, on_step: ProgressCallback | None = None,
                          cancel: CancelToken | None = None) -> SolveResult:
        """Awaitable :meth:`solve`; cancelling the awaiting task cancels the solve."""
        token = cancel or CancelToken()
        future = self.submit(request, on_step=on_step, cancel=token)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel()
            raise

    def close(self) -> None:
        """Stop the worker; requests still queued or running fail with a 503."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # -- worker ----------------------------------------------------------------------------
    def _plugin(self, name: str) -> Any:
        plugin = self._plugins.get(name)
        if plugin is None:
            registry = self.registry or get_registry()
            if name not in registry.plugins:
                raise RequestError(f"no plugin {name!r}; installed: {sorted(registry.plugins)}", field="plugin")
            plugin = self._plugins[name] = registry.create(name)
        return plugin

    def _pool(self, name: str) -> BatchPool:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = BatchPool(self._plugin(name), policy=self._policy,
                                                 max_batch=self.max_batch, batched=self.batching)
        return pool

    def _fail(self, job: _Job, error: BaseException) -> None:
        self._jobs.pop(job.id, None)
        outcome = ("cancelled" if isinstance(error, Cancelled) else "failed" if not isinstance(error, RequestError)
                   else "rejected" if error.status == 503 else "refused")
        self.counts[outcome] += 1
        _settle(job.future, error=error)

    def _admit(self) -> None:
        with self._cond:
            while not self._inbox and not self._pools and not self._closed:
                self._cond.wait(_IDLE_WAIT_S)
            if self.batching and self.batch_wait_s:
                self._gather()
            jobs = list(self._inbox)
            self._inbox.clear()
        for job in jobs:
            request = job.request
            try:
                if request.image is not None:  # read the puzzle first; _resolve hands it to the solver
                    self._pool(request.reader).submit(request.image, {"seed": request.seed}, key=job.id)
                else:
                    self._pool(request.plugin).submit(request.puzzle, request.context(), key=job.id)
            except RequestError as exc:
                self._fail(job, exc)
            except Exception as exc:  # noqa: BLE001 - a plugin that cannot be built fails its requests only
                self._fail(job, RequestError(f"plugin {job.request.plugin!r} could not start: {exc}", field="plugin",
                                             status=503, retry_after=5.0))

    def _gather(self) -> None:
        """Wait (holding the condition's lock; ``submit`` wakes it) until as many solves are in
        flight as lately, ``max_batch`` at most, or ``batch_wait_s`` has passed. Under steady load
        the clients answered by the last round send their next solves a few milliseconds later;
        without the wait those start a batch of their own, and the batches settle into two
        halves of the clients, each paying a model call."""
        self._peak = peak = max(float(len(self._jobs)), self._peak * _PEAK_DECAY)
        want = min(self.max_batch, int(peak))
        deadline = time.monotonic() + self.batch_wait_s
        while len(self._jobs) < want and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _drop_stale(self, pool: BatchPool) -> None:
        """Remove cancelled sessions and those that waited past the queue deadline."""
        deadline = time.monotonic() - self.limits.queue_timeout_s
        for queue, waiting in ((pool.waiting, True), (pool.active, False)):
            kept = [s for s in queue if not self._stale(self._jobs.get(s.key), deadline, waiting)]
            if len(kept) != len(queue):
                queue.clear()
                queue.extend(kept)

    def _stale(self, job: _Job | None, deadline: float, waiting: bool) -> bool:
        if job is None:
            return True
        if job.cancel.cancelled or job.future.cancelled():
            self._fail(job, Cancelled())
            return True
        if waiting and job.submitted < deadline:
            self._fail(job, RequestError(f"waited {self.limits.queue_timeout_s:g} s for a batch slot; "
                                         "the server is overloaded, retry shortly", status=503, retry_after=2.0))
            return True
        return False

    def _report(self, pool: BatchPool, job: _Job, history: Any) -> None:
        if job.on_step is None:
            job.reported = history.steps
            return
        energies = history.energies
        elapsed = time.monotonic() - job.submitted
        while job.reported < history.steps:
            job.reported += 1
            e = energies[job.reported]
            try:
                job.on_step(StepEvent(pool.plugin.name, job.id, job.reported, e, e - energies[job.reported - 1],
                                      float(job.reported), elapsed))
            except Exception:  # noqa: BLE001 - a broken listener must not stop the batch
                job.on_step = None
                return

    def _hand_over(self, pool: BatchPool, job: _Job, state: Any) -> None:
        """The reader has read ``job``'s image: queue the puzzle it read with the solving plugin."""
        reading = getattr(pool.plugin, "reading", None) or getattr(pool.plugin, "solution", None)
        try:
            job.read = jsonable(reading(state))
            puzzle = parse_puzzle(job.read, self.limits, field="image")
            job.reported = 0
            self._pool(job.request.plugin).submit(puzzle, job.request.context(), key=job.id)
        except RequestError as exc:
            self._fail(job, exc)
        except Exception as exc:  # noqa: BLE001 - a reader without a usable reading fails its request only
            self._fail(job, RequestError(f"the {pool.plugin.name} plugin read no usable puzzle: {exc}", field="image"))

    def _resolve(self, pool: BatchPool, job: _Job, result: PoolResult) -> None:
        self._report(pool, job, result.history)
        fault = result.fault
        reading = job.request.image is not None and job.read is None
        if fault is None and reading:
            self._hand_over(pool, job, result.state)
            return
        if fault is not None:
            if result.steps == 0 or reading:
                detail = fault.detail.split(": ", 1)[-1] if "raised" in fault.detail else fault.detail
                what = "image" if reading else "puzzle"
                error = RequestError(f"the {pool.plugin.name} plugin refused the {what}: {detail}", field=what)
            else:
                error = RuntimeError(f"the {pool.plugin.name} plugin failed at step {result.steps}: {fault}")
            self._fail(job, error)
            return
        plugin, state = pool.plugin, result.state
        answer = jsonable(_answer(plugin, state))
        checked = getattr(plugin, "checked_claims", None)
        claims = ([{"claim": text, "true": bool(ok)} for text, ok in checked(state)]
                  if callable(checked) and state is not None else None)
        check = getattr(plugin, "verified", None)
        verified = bool(check(state)) if callable(check) and state is not None else result.decision.policy == "verified"
        self._jobs.pop(job.id, None)
        self.counts["solved"] += 1
        _settle(job.future, SolveResult(job.id, plugin.name, answer, result.energy, verified, result.steps,
                                        result.decision.policy, result.decision.reason, time.monotonic() - job.submitted,
                                        job.read, claims))

    def _round(self) -> None:
        self._admit()
        for name, pool in list(self._pools.items()):
            self._drop_stale(pool)
            pool.step()
            for session in pool.active:
                job = self._jobs.get(session.key)
                if job is not None:
                    self._report(pool, job, session.history)
            for key in list(pool.results):
                job = self._jobs.get(key)
                result = pool.results.pop(key)
                if job is not None:
                    self._resolve(pool, job, result)
            if pool.done:  # a fresh pool next time: a pool remembers every key it has seen
                del self._pools[name]

    def _work(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    break
            try:
                self._round()
            except Exception as exc:  # noqa: BLE001 - fail the requests in flight, keep serving
                for job in list(self._jobs.values()):
                    if job not in self._inbox:
                        self._fail(job, RuntimeError(f"solver round failed: {exc}"))
                self._pools.clear()
        for job in list(self._jobs.values()):
            self._fail(job, RequestError("the server shut down before the solve finished; retry", status=503,
                                         retry_after=1.0))
