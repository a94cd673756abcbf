"""The Orchestrator: runs a Pipeline under an ATP budget with trust, scheduling, fault isolation,
telemetry, and checkpoint/resume."""

from __future__ import annotations

import math
import time
import uuid
from time import perf_counter
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import torch

from sage_core import (
    EnergyHistory,
    Event,
    HaltDecision,
    HaltEvent,
    IRPPlugin,
    IRPState,
    Registry,
    SageError,
    StepEvent,
    Telemetry,
    TrustMetrics,
    check_of,
    decode_tree,
    encode_tree,
    get_registry,
    state_halt_of,
    trust_metrics,
)

from ._backends import InlineBackend, make_backend
from ._budget import share, split_budget
from ._faults import BAD_TYPE, NON_FINITE, UPSTREAM, Fault, as_real, from_exception, state_verdict
from ._pipeline import INPUT, Node, Pipeline, PipelineError
from ._scheduler import BUILTIN_SCHEDULERS, Scheduler
from ._trust import TrustStore

PENDING, RUNNING, STARVED, HALTED = "pending", "running", "starved", "halted"
#: A node on a cycle that its policy halted while another node of the cycle is still active: it
#: takes no steps but still receives, wakes when a received value changes its energy, and halts
#: for good when the whole cycle has come to rest.
RESTING = "resting"
#: Halts that stay final on a cycle (the node may not take more steps).
FINAL_POLICIES = frozenset({"max_steps", "budget_exhausted"})
_ACTIVE = (PENDING, RUNNING, STARVED)
SCHEMA = 1
_EPS = 1e-9
DEFAULT_FLOOR_FRACTION = 0.1


class OrchestratorError(SageError, RuntimeError):
    """The orchestrator was used out of order (e.g. step() before start()) or a snapshot does not fit."""


@attrs.define(slots=True, eq=False)
class NodeRun:
    """Live bookkeeping of one node in a session (what the scheduler sees as a candidate)."""

    name: str
    node: Node
    index: int
    check: Any
    status: str = PENDING
    history: EnergyHistory = attrs.field(factory=EnergyHistory)
    allocation: float = math.inf
    next_cost: float = 1.0
    trust: float = 0.5
    elapsed: float = 0.0
    decision: HaltDecision | None = None
    fault: Fault | None = None
    #: The plugin's ``halt_state`` opinion on the latest state (computed where the state lives).
    verdict: HaltDecision | None = None
    #: Pipeline wiring, looked up once per session: (edge, source run) of the node's input
    #: edges other than feedback, its streaming out edges, its edges to other nodes of its
    #: cycle that deliver when it rests, and the runs of its cycle (empty if on none).
    inputs: tuple = ()
    streams: tuple = ()
    redeliver: tuple = ()
    cycle: tuple = ()
    #: The plugin's ``output(state)`` (the value of its output kind), if it has one.
    output: Any = None
    #: The plugin's own ``halt(history)``, or None when it keeps the base class's (no opinion).
    halt: Any = None

    @property
    def remaining(self) -> float:
        return self.allocation - self.history.spent


@attrs.frozen(slots=True)
class NodeResult:
    """Outcome of one node: final (or last good) state, why it halted, ATP, energies, metrics."""

    name: str
    plugin: str
    state: IRPState | None
    decision: HaltDecision
    fault: Fault | None
    steps: int
    atp_spent: float
    allocation: float
    energies: tuple[float, ...]
    metrics: TrustMetrics

    @property
    def failed(self) -> bool:
        return self.fault is not None

    @property
    def reason(self) -> str:
        return self.decision.policy

    @property
    def energy(self) -> float | None:
        return self.energies[-1] if self.energies else None


@attrs.frozen(slots=True)
class Result:
    """Outcome of a session: per-node results, ATP, the trust after the session, halt events."""

    session: str
    nodes: dict[str, NodeResult]
    budget: float | None
    atp_spent: float
    trust: dict[str, float]
    events: tuple[Event, ...]

    @property
    def states(self) -> dict[str, IRPState | None]:
        return {name: node.state for name, node in self.nodes.items()}

    @property
    def failures(self) -> dict[str, Fault]:
        return {name: node.fault for name, node in self.nodes.items() if node.fault is not None}

    def __getitem__(self, name: str) -> NodeResult:
        return self.nodes[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no tensors)."""
        return {
            "session": self.session,
            "budget": self.budget,
            "atp_spent": self.atp_spent,
            "trust": self.trust,
            "nodes": {
                name: {"plugin": n.plugin, "reason": n.decision.policy, "detail": n.decision.reason,
                       "failed": n.failed, "steps": n.steps, "energy": n.energy, "atp_spent": n.atp_spent,
                       "allocation": None if math.isinf(n.allocation) else n.allocation,
                       "monotonicity": n.metrics.monotonicity, "convergence_rate": n.metrics.convergence_rate}
                for name, n in self.nodes.items()
            },
        }


def _pack_value(value: Any) -> dict[str, Any]:
    """A run input as msgpack-able data (tensors as raw bytes), for nodes that have not started."""
    tensors, skeleton = encode_tree(value)
    return {"tree": skeleton, "tensors": {key: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                                                "data": t.contiguous().view(torch.uint8).numpy().tobytes()}
                                          for key, t in tensors.items()}}


def _unpack_value(packed: Mapping[str, Any]) -> Any:
    tensors = {}
    for key, t in packed["tensors"].items():
        raw = torch.frombuffer(bytearray(t["data"]), dtype=torch.uint8)
        tensors[key] = raw.view(getattr(torch, t["dtype"])).reshape(t["shape"])
    return decode_tree(tensors, packed["tree"])


def _calls_of(run: NodeRun) -> tuple:
    """The plugin calls one step of ``run`` makes, looked up once: step, project, energy,
    step_cost (None for the default 1 ATP), halt_state (None if it has none)."""
    plugin = run.node.plugin
    cost_fn = None if type(plugin).step_cost is IRPPlugin.step_cost else plugin.step_cost
    return plugin.step, plugin.project, plugin.energy, cost_fn, state_halt_of(plugin)


def _make_scheduler(spec: Any, registry: Registry | None) -> Scheduler:
    if spec is None:
        spec = "energy_drop"
    if isinstance(spec, str):
        if spec in BUILTIN_SCHEDULERS:
            return BUILTIN_SCHEDULERS[spec]()
        factory = (registry or get_registry()).get("backend", spec)
        return factory()
    if not callable(getattr(spec, "select", None)):
        raise TypeError(f"a scheduler needs select(candidates, k); got {spec!r}")
    return spec


class Orchestrator:
    """Runs a :class:`Pipeline`.

    ``scheduler``: ``"energy_drop"`` (default), ``"round_robin"``, a name registered through
    ``sage_register_backends``, or an object with ``select``. ``backend``: ``"inline"``
    (default), ``"threads"``, ``"ray"``, a registered name or a backend object. ``trust``: a
    :class:`TrustStore` shared across sessions (updated in place when a session finishes).
    ``telemetry``: where step and halt events go (see :meth:`events` for an iterator).

    One session at a time: :meth:`run` = :meth:`start` + :meth:`finish`; in between,
    :meth:`step` runs one scheduling round and :meth:`checkpoint` saves the session.
    """

    def __init__(self, pipeline: Pipeline, *, scheduler: Any = None, backend: Any = None,
                 trust: TrustStore | None = None, telemetry: Telemetry | None = None,
                 floor_fraction: float = DEFAULT_FLOOR_FRACTION, registry: Registry | None = None) -> None:
        pipeline.validate()
        self.pipeline = pipeline
        self._registry = registry
        settings = pipeline.settings
        self.scheduler = _make_scheduler(scheduler if scheduler is not None else settings.get("scheduler"), registry)
        self.backend = make_backend(backend if backend is not None else settings.get("backend"), self.registry)
        self.trust = trust if trust is not None else TrustStore()
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        if not 0.0 <= floor_fraction <= 1.0:
            raise ValueError(f"floor_fraction must be in [0, 1], got {floor_fraction}")
        self.floor_fraction = floor_fraction
        self.session: str | None = None
        self.budget: float | None = None
        self.rounds = 0
        self.runs: dict[str, NodeRun] = {}
        self._order: list[NodeRun] = []
        self._halts: list[HaltEvent] = []
        self._buffer: list[Event] | None = None
        self._done = True
        self._result: Result | None = None
        self._t0 = 0.0
        self._stores: set[int] = set()

    @property
    def registry(self) -> Registry:
        return self._registry or get_registry()

    # -- session lifecycle ----------------------------------------------------------------
    def _setup(self, session: str | None, budget: float | None) -> None:
        if budget is not None and not budget >= 0:
            raise ValueError(f"budget must be >= 0 ATP or None, got {budget!r}")
        self.session = session or uuid.uuid4().hex[:12]
        self.budget = None if budget is None or math.isinf(budget) else float(budget)
        self.rounds = 0
        self._halts, self._done, self._result, self._t0 = [], False, None, time.perf_counter()
        nodes = self.pipeline.nodes
        self.runs = {}
        for index, node in enumerate(nodes):
            self.runs[node.name] = NodeRun(node.name, node, index, check_of(node.policy),
                                           trust=self.trust.get(node.plugin_name))
        self._order = list(self.runs.values())
        self._wire()
        self.backend.open({node.name: node for node in nodes})

    def _wire(self) -> None:
        """Look the pipeline's edges and cycles up once, so no step consults the graph."""
        pipeline, runs = self.pipeline, self.runs
        for group in pipeline.cycles():
            members = tuple(run for run in self._order if run.name in group)
            for run in members:
                run.cycle = members
        for run in self._order:
            run.inputs = tuple((edge, runs[edge.source]) for edge in pipeline.in_edges(run.name) if not edge.feedback)
            outs = pipeline.out_edges(run.name)
            run.streams = tuple(edge for edge in outs if edge.streaming)
            run.redeliver = tuple(edge for edge in outs if not edge.streaming and runs[edge.target] in run.cycle)
            plugin = run.node.plugin
            output = getattr(plugin, "output", None)
            run.output = output if callable(output) else None
            own = getattr(type(plugin), "halt", None)
            run.halt = None if own is None or own is IRPPlugin.halt else plugin.halt
        self._pending = sum(run.status == PENDING for run in self._order)

    def _split(self) -> None:
        names = [run.name for run in self._order]
        if self.budget is None:
            for run in self._order:
                run.allocation = math.inf
            return
        default_floor = self.floor_fraction * self.budget / len(names)
        floors = {run.name: (run.node.floor if run.node.floor is not None else default_floor) for run in self._order}
        allocation = split_budget(self.budget, names, {r.name: r.trust for r in self._order}, floors)
        for run in self._order:
            run.allocation = allocation[run.name]

    def start(self, inputs: Mapping[str, Any] | None = None, budget: float | None = None, *,
              session: str | None = None, store: Any = None) -> str:
        """Begin a session: split the budget, start every node whose inputs are ready.

        ``inputs`` maps node names to their input ``x0`` (a node's TOML ``input`` is used
        otherwise); ``budget`` is in ATP (default: the pipeline's ``budget`` setting, else
        unlimited). With ``store`` the session is created in that SessionStore. Returns the
        session id.
        """
        inputs = dict(inputs or {})
        unknown = set(inputs) - set(self.pipeline.graph)
        if unknown:
            raise PipelineError(f"inputs for unknown node(s) {sorted(unknown)}")
        for name in inputs:
            if any(edge.to == INPUT for edge in self.pipeline.in_edges(name)):
                raise PipelineError(f"node {name!r} gets its input from an edge; it cannot also take run input")
        if budget is None:
            budget = self.pipeline.settings.get("budget")
        if store is not None:
            session = store.create(session_id=session)
            self._stores.add(id(store))
        self._setup(session, budget)
        self._inputs = inputs
        self._split()
        self._notify_started()
        self._activate_ready()
        return self.session  # type: ignore[return-value]

    def _notify_started(self) -> None:
        try:
            self.registry.hook.sage_session_started(session=self.session, nodes=list(self.runs))
        except Exception:  # noqa: BLE001 - an observer must not break a session
            pass

    @property
    def done(self) -> bool:
        """True when every node has halted (or no session is active)."""
        return self._done

    def _require(self) -> None:
        if self.session is None:
            raise OrchestratorError("no session: call start(...) or resume(...) first")

    # -- readiness and input --------------------------------------------------------------
    def _activate_ready(self) -> None:
        progressed = bool(self._pending)
        while progressed:
            progressed = False
            for run in self._order:
                if run.status != PENDING:
                    continue
                sources = run.inputs
                failed = [src for edge, src in sources if src.status == HALTED and src.fault is not None]
                if failed:
                    names = ", ".join(repr(s.name) for s in failed)
                    self._halt(run, HaltDecision(UPSTREAM, f"upstream node(s) {names} failed"),
                               Fault(UPSTREAM, f"upstream node(s) {names} failed"))
                    progressed = True
                    continue
                ready = all(src.status == HALTED or (src.status == RESTING and src in run.cycle)
                            or (edge.streaming and src.history.steps > 0) for edge, src in sources)
                if ready:
                    self._start_node(run, sources)
                    progressed = True

    def _start_node(self, run: NodeRun, sources: tuple) -> None:
        node = run.node
        x0 = self._inputs.get(run.name, node.input)
        ctx: dict[str, Any] = {"seed": node.seed}
        try:
            for edge, src in sources:
                value = edge.bridge(self._output_of(src))
                if edge.to == INPUT:
                    x0 = value
                else:
                    ctx[edge.to] = value
        except Exception as exc:  # noqa: BLE001 - a bridge failure fails the target node
            self._halt(run, HaltDecision("error", f"bridge into {run.name!r} failed"),
                       from_exception(exc, f"bridge into {run.name!r}"))
            return
        try:
            energy, cost = self.backend.init(run.name, x0, ctx)
        except Fault as fault:
            self._halt(run, HaltDecision(fault.kind, fault.detail), fault)
            return
        self._pending -= 1
        run.status = RUNNING
        run.history.append(energy)
        run.next_cost = cost
        self._after_step(run)

    def _deliver(self, run: NodeRun, edges: tuple) -> None:
        """Send ``run``'s current state along ``edges`` into the started targets' ``receive``; a
        resting target whose energy the value changes wakes up."""
        state = None
        for edge in edges:
            target = self.runs[edge.target]
            if target.status not in (RUNNING, STARVED, RESTING):
                continue
            try:
                if state is None:
                    state = self._output_of(run)
                energy, cost = self.backend.receive(target.name, edge.to, edge.bridge(state))
            except Exception as exc:  # noqa: BLE001
                fault = exc if isinstance(exc, Fault) else from_exception(exc, f"stream {edge.label}")
                self._halt(target, HaltDecision(fault.kind, fault.detail), fault, final=True)
                continue
            target.next_cost = cost
            if target.status == RESTING and energy != target.history.last:
                target.decision = target.verdict = None
                target.status = STARVED if cost > target.remaining + _EPS else RUNNING
        self._activate_ready()

    def _state_of(self, run: NodeRun) -> IRPState | None:
        """The node's current state with its latest energy filled in."""
        state = self.backend.state(run.name)
        last = run.history.last
        if state is not None and last is not None and state.energy != last:
            state = state.evolve(energy=last)
        return state

    def _output_of(self, run: NodeRun) -> IRPState | None:
        """What bridges read from a node: its state, with ``x`` = ``plugin.output(state)`` if it has one."""
        state = self._state_of(run)
        if run.output is not None and state is not None:
            state = state.evolve(x=run.output(state))
        return state

    # -- stepping ------------------------------------------------------------------------
    def _after_step(self, run: NodeRun) -> None:
        """Check halting after a step (or start) and whether the node can afford its next step."""
        try:
            decision = run.check(run.history) or run.verdict or (run.halt is not None and run.halt(run.history)) or None
        except Exception as exc:  # noqa: BLE001
            fault = from_exception(exc, "halt()")
            self._halt(run, HaltDecision(fault.kind, fault.detail), fault)
            return
        if decision is not None:
            self._halt(run, decision)
        elif run.next_cost > run.remaining + _EPS:
            run.status = STARVED
        else:
            run.status = RUNNING

    def _emit(self, event: Event) -> None:
        if self.telemetry.active:
            self.telemetry.emit(event)
        if self._buffer is not None:
            self._buffer.append(event)

    def _apply(self, run: NodeRun, cost: float, outcome: Any) -> None:
        if isinstance(outcome, Fault):
            self._halt(run, HaltDecision(outcome.kind, outcome.detail), outcome)
            return
        energy, step, next_cost, elapsed, run.verdict = outcome
        history = run.history
        previous = history.energies[-1]
        history.append(energy, cost)
        run.next_cost, run.elapsed = next_cost, run.elapsed + elapsed
        if self.telemetry.active or self._buffer is not None:
            self._emit(StepEvent(run.name, self.session or "", step, energy, energy - previous, history.spent,
                                 run.elapsed))
        self._after_step(run)
        if run.streams:
            self._deliver(run, run.streams)

    def _sweep(self) -> None:
        """Fast path of :meth:`finish`: while every running node is inline, with no timeout and no
        streaming edge, choose and step them in one loop: the same choices, checks (those of
        :func:`~orchestrator._faults.advance`, inlined) and bookkeeping (that of :meth:`_apply`
        and :meth:`_after_step`, inlined while no event is wanted) as rounds of :meth:`step`."""
        backend = self.backend
        if type(backend) is not InlineBackend:
            return
        states, runs, order, select = backend.states, self.runs, self._order, self.scheduler.select
        pick = getattr(self.scheduler, "pick", None) or (lambda candidates, changed: select(candidates, 1)[0])
        apply, halt, telemetry = self._apply, self._halt, self.telemetry
        calls: dict[str, tuple] = {}
        while True:
            running = [run for run in order if run.status == RUNNING]
            if not running or any(run.node.timeout is not None or run.streams for run in running):
                return
            single = running[0] if len(running) == 1 else None
            name = None
            while True:
                run = single or runs[pick(running, name)]
                self.rounds += 1
                name, history = run.name, run.history
                fns = calls.get(name)
                if fns is None:
                    fns = calls[name] = _calls_of(run)
                step_fn, project_fn, energy_fn, cost_fn, state_halt = fns
                state, cost = states[name], run.next_cost
                remaining = run.allocation - history.spent
                t0 = perf_counter()
                try:
                    new = step_fn(state, remaining)
                    if not isinstance(new, IRPState):
                        raise Fault(BAD_TYPE, f"step() returned {type(new).__name__}, expected IRPState")
                    new = project_fn(new)
                    if not isinstance(new, IRPState):
                        raise Fault(BAD_TYPE, f"project() returned {type(new).__name__}, expected IRPState")
                    energy = energy_fn(new)
                    if energy.__class__ is not float:
                        energy = as_real(energy, "energy()")
                    if energy - energy != 0.0:
                        raise Fault(NON_FINITE, f"energy is {energy!r} after step {new.step}")
                    if cost_fn is None:
                        next_cost = 1.0
                    else:
                        next_cost = cost_fn(new)
                        if next_cost.__class__ is not float:
                            next_cost = as_real(next_cost, "step_cost()")
                    verdict = None if state_halt is None else state_verdict(state_halt, new)
                except Exception as exc:  # noqa: BLE001 - isolating plugin failures is the point
                    apply(run, cost, from_exception(exc, f"step {state.step + 1}"))
                    break
                elapsed = perf_counter() - t0
                states[name] = new
                if telemetry.active or self._buffer is not None:
                    apply(run, cost, (energy, new.step, next_cost, elapsed, verdict))
                    if run.status != RUNNING:
                        break
                    continue
                # _apply then _after_step with no event to emit and no stream to deliver
                run.verdict = verdict
                history.append(energy, cost)
                run.next_cost, run.elapsed = next_cost, run.elapsed + elapsed
                try:
                    decision = run.check(history) or verdict or (run.halt is not None and run.halt(history)) or None
                except Exception as exc:  # noqa: BLE001
                    fault = from_exception(exc, "halt()")
                    halt(run, HaltDecision(fault.kind, fault.detail), fault)
                    break
                if decision is not None:
                    halt(run, decision)
                    break
                if next_cost > run.allocation - history.spent + _EPS:
                    run.status = STARVED
                    break

    def _plan(self) -> list[NodeRun]:
        """Choose the node(s) to step this round ([] if the round was spent on bookkeeping or the
        session is done)."""
        running = [run for run in self._order if run.status == RUNNING]
        if not running:
            starved = [run for run in self._order if run.status == STARVED]
            if starved:
                # Nobody else will free ATP: the node furthest from affording its next step halts
                # and hands its remainder to the others, which may wake one of them.
                run = max(starved, key=lambda r: (r.next_cost - r.remaining, -r.trust, r.index))
                self._halt(run, HaltDecision("budget_exhausted",
                                             f"next step costs {run.next_cost:.6g} ATP, {run.remaining:.6g} left"))
            else:
                for run in self._order:  # a cycle whose last active node vanished: settle it
                    if run.status == RESTING:
                        self._halt(run, run.decision, final=True)  # type: ignore[arg-type]
                self._done = True
            return []
        self.rounds += 1
        if len(running) == 1:
            return running
        names = self.scheduler.select(running, self.backend.parallel)
        if not names:
            raise OrchestratorError(f"scheduler {self.scheduler!r} selected no node among {len(running)}")
        return [self.runs[name] for name in names]

    def _commit(self, chosen: list[NodeRun], costs: list[float], outcomes: list[Any]) -> None:
        for run, cost, outcome in zip(chosen, costs, outcomes):
            if run.status == RUNNING:  # may have been halted by an earlier outcome's stream
                self._apply(run, cost, outcome)

    def _round(self) -> None:
        chosen = self._plan()
        if chosen:
            costs = [run.next_cost for run in chosen]
            self._commit(chosen, costs, self.backend.step([(run.name, run.remaining) for run in chosen]))

    def step(self) -> list[Event]:
        """Run one scheduling round (one step of the chosen node(s)); return the events it emitted."""
        self._require()
        if self._done:
            return []
        buffer, self._buffer = self._buffer, []
        try:
            self._round()
            return self._buffer
        finally:
            self._buffer = buffer

    def events(self) -> Iterator[Event]:
        """Iterate the session's step and halt events while running it to the end."""
        self._require()
        while not self._done:
            for event in self.step():
                yield event

    def finish(self) -> Result:
        """Run the session to the end, update trust, and return the :class:`Result`."""
        self._require()
        while not self._done:
            self._sweep()
            if not self._done:
                self._round()
        return self._finalise()

    def run(self, inputs: Mapping[str, Any] | None = None, budget: float | None = None, *,
            session: str | None = None, store: Any = None) -> Result:
        """Run a whole session: :meth:`start` then :meth:`finish`."""
        self.start(inputs, budget, session=session, store=store)
        return self.finish()

    # -- halting and ATP hand-over -----------------------------------------------------------
    def _halt(self, run: NodeRun, decision: HaltDecision, fault: Fault | None = None, *, final: bool = False) -> None:
        """Halt ``run`` (or let it rest, if its cycle is still active), hand its ATP over, settle its cycle."""
        cycle = run.cycle
        if (cycle and fault is None and not final and decision.policy not in FINAL_POLICIES
                and any(other.status in _ACTIVE for other in cycle if other is not run)):
            run.status, run.decision = RESTING, decision
            if run.redeliver:
                self._deliver(run, run.redeliver)
            self._activate_ready()
            return
        if run.status == PENDING:
            self._pending -= 1
        run.status, run.decision, run.fault = HALTED, decision, fault
        if self.budget is not None:
            unspent = run.allocation - run.history.spent
            run.allocation = run.history.spent
            receivers = [r for r in self._order if r.status != HALTED]
            for name, amount in share(unspent, [r.name for r in receivers], {r.name: r.trust for r in receivers}).items():
                receiver = self.runs[name]
                receiver.allocation += amount
                if receiver.status == STARVED and receiver.next_cost <= receiver.remaining + _EPS:
                    receiver.status = RUNNING
        history = run.history
        metrics = trust_metrics(history)
        last = history.last
        event = HaltEvent(run.name, self.session or "", history.steps, decision.reason, decision.policy,
                          last if last is not None and math.isfinite(last) else None, metrics.monotonicity,
                          metrics.dE_variance, metrics.convergence_rate, history.spent, run.elapsed)
        self._halts.append(event)
        self._emit(event)
        try:
            self.registry.hook.sage_plugin_halted(session=self.session, node=run.name, event=event)
        except Exception:  # noqa: BLE001
            pass
        if cycle and not any(other.status in _ACTIVE for other in cycle):
            for other in cycle:  # the cycle has come to rest: its resting nodes halt for good
                if other.status == RESTING:
                    self._halt(other, other.decision, final=True)  # type: ignore[arg-type]
        self._activate_ready()

    # -- results ----------------------------------------------------------------------------
    def _finalise(self) -> Result:
        if self._result is not None:
            return self._result
        for run in self._order:
            if run.history.steps > 0 or (run.fault is not None and run.fault.kind != UPSTREAM):
                self.trust.update(run.node.plugin_name, run.history, run.fault is not None)
        nodes = {}
        for run in self._order:
            state = self._state_of(run)
            nodes[run.name] = NodeResult(run.name, run.node.plugin_name, state, run.decision, run.fault,
                                         run.history.steps, run.history.spent, run.allocation,
                                         tuple(run.history.energies), trust_metrics(run.history))
        spent = sum(run.history.spent for run in self._order)
        self._result = Result(self.session or "", nodes, self.budget, spent, self.trust.as_dict(), tuple(self._halts))
        try:
            self.registry.hook.sage_session_finished(session=self.session, result=self._result)
        except Exception:  # noqa: BLE001
            pass
        return self._result

    def close(self) -> None:
        """Release backend resources (thread pools, Ray actors)."""
        self.backend.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> Any:
        """The session as a ``persistence.SessionSnapshot`` (node states + orchestrator dict + RNG)."""
        from ._persist import PluginSnapshot, SessionSnapshot, capture_rng_state

        self._require()
        nodes = {}
        for run in self._order:
            if self.backend.state(run.name) is None:
                continue
            plugin = run.node.plugin
            tensors, meta = self.backend.export(run.name)
            nodes[run.name] = PluginSnapshot(run.node.plugin_name, str(getattr(plugin, "version", "0")),
                                             int(getattr(plugin, "api_version", 1)), tensors, meta)
        return SessionSnapshot(nodes, self._orchestrator_dict(), capture_rng_state())

    def _orchestrator_dict(self) -> dict[str, Any]:
        try:
            spec = self.pipeline.to_dict()
        except PipelineError:
            spec = None
        runs = {}
        for run in self._order:
            h = run.history
            runs[run.name] = {
                "plugin": run.node.plugin_name, "status": run.status, "allocation": run.allocation,
                "next_cost": run.next_cost, "trust": run.trust, "elapsed": run.elapsed,
                "energies": list(h.energies), "spent": h.spent, "decreases": h.decreases,
                "rises_in_a_row": h.rises_in_a_row, "sum_d": h.sum_d, "sum_d2": h.sum_d2,
                "decision": None if run.decision is None else [run.decision.policy, run.decision.reason],
                "fault": None if run.fault is None else [run.fault.kind, run.fault.detail, run.fault.traceback],
            }
        halts = [attrs.asdict(event) for event in self._halts]
        pending_inputs = {name: _pack_value(value) for name, value in self._inputs.items()
                          if self.runs[name].status == PENDING}
        return {
            "schema": SCHEMA, "session": self.session, "pipeline": spec, "budget": self.budget,
            "rounds": self.rounds, "done": self._done, "floor_fraction": self.floor_fraction,
            "scheduler": {"name": getattr(self.scheduler, "name", type(self.scheduler).__name__),
                          "state": self.scheduler.state_dict()},
            "backend": getattr(self.backend, "name", type(self.backend).__name__),
            "trust": self.trust.to_dict(), "nodes": runs, "halts": halts, "inputs": pending_inputs,
        }

    def checkpoint(self, store: Any) -> int:
        """Save the session in ``store`` (a ``persistence.SessionStore``); returns the checkpoint number."""
        self._require()
        if id(store) not in self._stores:
            from ._persist import SessionExistsError

            try:
                store.create(session_id=self.session)
            except SessionExistsError:
                pass
            self._stores.add(id(store))
        return store.checkpoint(self.session, self.snapshot())

    def resume(self, store: Any, session_id: str, checkpoint: int | None = None) -> str:
        """Load a checkpoint of ``session_id`` into this orchestrator; continue with :meth:`step`,
        :meth:`events` or :meth:`finish`. The continuation is bit-identical to an uninterrupted run
        (node states, energies, budgets, trust, scheduler and RNG state are all restored)."""
        from ._persist import restore_rng_state

        snapshot = store.load(session_id, checkpoint)
        data = snapshot.orchestrator
        if data.get("schema") != SCHEMA:
            raise OrchestratorError(f"session {session_id!r}: orchestrator schema {data.get('schema')!r}, "
                                    f"this sage-irp reads {SCHEMA}")
        names = set(data["nodes"])
        if names != set(self.pipeline.graph):
            raise OrchestratorError(f"session {session_id!r} has nodes {sorted(names)} but the pipeline has "
                                    f"{sorted(self.pipeline.graph)}")
        self._stores.add(id(store))
        self.floor_fraction = float(data["floor_fraction"])
        self._setup(str(data["session"]), data["budget"])
        self._inputs = {name: _unpack_value(packed) for name, packed in data.get("inputs", {}).items()}
        self.rounds = int(data["rounds"])
        self.trust = TrustStore.from_dict(data["trust"])
        self.scheduler.load_state_dict(data["scheduler"]["state"])
        for name, saved in data["nodes"].items():
            run = self.runs[name]
            if saved["plugin"] != run.node.plugin_name:
                raise OrchestratorError(f"session {session_id!r}: node {name!r} ran plugin {saved['plugin']!r}, "
                                        f"the pipeline has {run.node.plugin_name!r}")
            run.status, run.allocation, run.next_cost = saved["status"], saved["allocation"], saved["next_cost"]
            run.trust, run.elapsed = saved["trust"], saved["elapsed"]
            run.history = EnergyHistory(list(saved["energies"]), None, saved["spent"], saved["decreases"],
                                        saved["rises_in_a_row"], saved["sum_d"], saved["sum_d2"])
            run.decision = None if saved["decision"] is None else HaltDecision(*saved["decision"])
            run.fault = None if saved["fault"] is None else Fault(*saved["fault"])
            plugin_snapshot = snapshot.nodes.get(name)
            if plugin_snapshot is not None:
                plugin = run.node.plugin
                if plugin_snapshot.plugin != run.node.plugin_name:
                    raise OrchestratorError(f"node {name!r}: snapshot is of plugin {plugin_snapshot.plugin!r}")
                if str(plugin_snapshot.version) != str(getattr(plugin, "version", "0")):
                    raise OrchestratorError(f"node {name!r}: saved by {run.node.plugin_name} "
                                            f"{plugin_snapshot.version}, installed is {plugin.version}")
                try:
                    self.backend.import_state(name, plugin_snapshot.tensors, plugin_snapshot.meta)
                except Fault as fault:
                    raise OrchestratorError(f"node {name!r}: cannot restore its state: {fault}") from None
        self._pending = sum(run.status == PENDING for run in self._order)
        self._halts = [HaltEvent(**event) for event in data["halts"]]
        self._done = bool(data["done"])
        restore_rng_state(snapshot.rng)
        self._notify_started()
        return self.session  # type: ignore[return-value]

    @classmethod
    def from_store(cls, store: Any, session_id: str, checkpoint: int | None = None, **kwargs: Any) -> Orchestrator:
        """Rebuild the pipeline saved in a session (built from registered names) and resume it."""
        snapshot = store.load(session_id, checkpoint)
        spec = snapshot.orchestrator.get("pipeline")
        if spec is None:
            raise OrchestratorError(f"session {session_id!r} was run on a pipeline of Python objects; "
                                    "rebuild it in Python and call Orchestrator(pipeline).resume(store, id)")
        kwargs.setdefault("scheduler", snapshot.orchestrator["scheduler"]["name"])
        kwargs.setdefault("backend", snapshot.orchestrator["backend"])
        orchestrator = cls(Pipeline.from_dict(spec, registry=kwargs.get("registry")), **kwargs)
        orchestrator.resume(store, session_id, checkpoint)
        return orchestrator
