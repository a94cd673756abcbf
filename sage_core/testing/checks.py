"""The conformance checks. Each takes a :class:`_Subject` and raises AssertionError on failure."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import msgpack

from ..halting import HaltDecision, MaxSteps
from ..history import EnergyHistory
from ..loop import refine
from ..plugin import IRPPluginProtocol, state_halt_of, validate_plugin_class
from ..state import IRPState
from .compare import assert_trees_equal

DEFAULT_STEPS = 8


class ConformanceError(AssertionError):
    """A plugin failed a conformance check; the message names the check and the plugin."""


@attrs.frozen
class _Subject:
    """What a check runs against: a plugin factory, an example input and a step count."""

    factory: Callable[[], Any]
    x0: Any
    ctx: Mapping[str, Any]
    steps: int
    name: str

    def fresh(self) -> Any:
        return self.factory()

    def start(self, plugin: Any) -> IRPState:
        return plugin.init_state(self.x0, dict(self.ctx))

    def advance(self, plugin: Any, state: IRPState) -> IRPState:
        return plugin.project(plugin.step(state, None))

    def trajectory(self, plugin: Any, state: IRPState, n: int) -> tuple[IRPState, list[float]]:
        energies = [float(plugin.energy(state))]
        for _ in range(n):
            state = self.advance(plugin, state)
            energies.append(float(plugin.energy(state)))
        return state, energies


@attrs.frozen
class CheckResult:
    """Outcome of one check on one plugin."""

    check: str
    plugin: str
    passed: bool
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ConformanceReport:
    """All check results for one plugin; ``passed`` if every check passed."""

    plugin: str
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(result for result in self.results if not result.passed)


def _snapshot(state: IRPState) -> tuple[Any, ...]:
    """A deep, independent copy of a state's data for mutation checks."""
    import copy

    return copy.deepcopy((state.x, state.step, state.energy, state.meta, state.carry))


def _through_msgpack(meta: Any) -> Any:
    """``meta`` after the msgpack round trip persistence puts it through."""
    return msgpack.unpackb(msgpack.packb(meta, use_bin_type=True), raw=False, strict_map_key=True)


def check_contract(subject: _Subject) -> None:
    """The class passes the contract validator; instances return IRPState and numeric energies."""
    plugin = subject.fresh()
    validate_plugin_class(type(plugin))
    assert isinstance(plugin, IRPPluginProtocol), "instance does not satisfy IRPPluginProtocol"
    state = subject.start(plugin)
    assert isinstance(state, IRPState), f"init_state returned {type(state).__name__}, expected IRPState"
    energy = plugin.energy(state)
    assert isinstance(energy, numbers.Real) and not isinstance(energy, bool), (
        f"energy returned {type(energy).__name__}, expected a real number")
    new = plugin.step(state, None)
    assert isinstance(new, IRPState), f"step returned {type(new).__name__}, expected IRPState"
    assert new.step == state.step + 1, f"step() must advance state.step by 1 ({state.step} -> {new.step})"
    projected = plugin.project(new)
    assert isinstance(projected, IRPState), f"project returned {type(projected).__name__}, expected IRPState"
    cost = plugin.step_cost(state)
    assert isinstance(cost, numbers.Real) and cost >= 0, f"step_cost returned {cost!r}, expected a number >= 0"


def check_finite_energies(subject: _Subject) -> None:
    """Energies of the initial state and of every step are finite."""
    plugin = subject.fresh()
    _, energies = subject.trajectory(plugin, subject.start(plugin), subject.steps)
    bad = [i for i, e in enumerate(energies) if not math.isfinite(e)]
    assert not bad, f"non-finite energy at step(s) {bad}: {[energies[i] for i in bad]}"


def check_step_does_not_mutate(subject: _Subject) -> None:
    """``step`` and ``project`` leave their input state untouched."""
    plugin = subject.fresh()
    state = subject.start(plugin)
    for _ in range(min(subject.steps, 3)):
        before = _snapshot(state)
        new = plugin.step(state, None)
        assert_trees_equal(before, _snapshot(state), "step() mutated its input state:")
        before_projection = _snapshot(new)
        state = plugin.project(new)
        assert_trees_equal(before_projection, _snapshot(new), "project() mutated its input state:")


def check_deterministic(subject: _Subject) -> None:
    """Two fresh instances given the same input and context produce bit-identical trajectories."""
    runs = []
    for _ in range(2):
        plugin = subject.fresh()
        state, energies = subject.trajectory(plugin, subject.start(plugin), subject.steps)
        runs.append((energies, plugin.export_state(state)))
    assert_trees_equal(runs[0], runs[1], "two runs with the same seed")


def check_halts_within_max_steps(subject: _Subject) -> None:
    """Under ``MaxSteps(n)`` the refine loop stops after at most n steps; ``halt`` and
    ``halt_state`` return a decision or None."""
    plugin = subject.fresh()
    decision = plugin.halt(EnergyHistory.of([1.0, 0.5]))
    assert decision is None or isinstance(decision, HaltDecision), (
        f"halt() returned {type(decision).__name__}, expected HaltDecision or None")
    state_halt = state_halt_of(plugin)
    if state_halt is not None:
        state = subject.start(plugin)
        for _ in range(2):
            decision = state_halt(state)
            assert decision is None or isinstance(decision, HaltDecision), (
                f"halt_state() returned {type(decision).__name__}, expected HaltDecision or None")
            state = plugin.project(plugin.step(state))
    result = refine(plugin, subject.x0, subject.ctx, policy=MaxSteps(subject.steps))
    assert result.history.steps <= subject.steps, f"ran {result.history.steps} steps under MaxSteps({subject.steps})"
    assert result.state.step == subject.start(subject.fresh()).step + result.history.steps, (
        "state.step does not match the number of steps taken")


def check_export_round_trip(subject: _Subject) -> None:
    """export -> import -> export is bit-exact; meta survives msgpack."""
    plugin = subject.fresh()
    state = subject.start(plugin)
    for _ in range(2):
        state = subject.advance(plugin, state)
    tensors, meta = plugin.export_state(state)
    assert isinstance(tensors, dict) and all(isinstance(k, str) for k in tensors), "export tensors must be a dict with str keys"
    import torch

    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    assert not bad, f"export_state tensors {bad} are not torch tensors"
    try:
        packed = _through_msgpack(meta)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"export_state meta is not msgpack-serialisable: {exc}") from exc
    restored = subject.fresh().import_state(tensors, packed)
    assert isinstance(restored, IRPState), f"import_state returned {type(restored).__name__}"
    assert_trees_equal(plugin.export_state(state), subject.fresh().export_state(restored), "export after import")
    assert_trees_equal(float(plugin.energy(state)), float(plugin.energy(restored)), "energy after import")


def check_resume_equals_uninterrupted(subject: _Subject) -> None:
    """Stopping after k steps, exporting, importing into a fresh instance and continuing equals not stopping."""
    n = subject.steps
    plugin = subject.fresh()
    reference_state, reference = subject.trajectory(plugin, subject.start(plugin), n)
    expected = plugin.export_state(reference_state)
    for k in sorted({1, n // 2, n - 1}):
        first = subject.fresh()
        state, head = subject.trajectory(first, subject.start(first), k)
        tensors, meta = first.export_state(state)
        meta = _through_msgpack(meta)
        second = subject.fresh()
        resumed, tail = subject.trajectory(second, second.import_state(tensors, meta), n - k)
        assert_trees_equal(reference, head + tail[1:], f"energies resumed at step {k}")
        assert_trees_equal(expected, second.export_state(resumed), f"final state resumed at step {k}")


def check_project_idempotent(subject: _Subject) -> None:
    """Projecting twice equals projecting once."""
    plugin = subject.fresh()
    state = plugin.step(subject.start(plugin), None)
    once = plugin.project(state)
    assert_trees_equal(plugin.export_state(once), plugin.export_state(plugin.project(once)), "project(project(s))")


#: How far a batch method's floats may stray from its one-session method's (batched arithmetic
#: rounds differently, e.g. another matmul kernel).
BATCH_TOLERANCE = 1e-4
BATCH_SIZE = 3


def check_batch_methods_agree(subject: _Subject) -> None:
    """Each batch method the plugin offers (``init_state_batch``, ``step_batch``,
    ``project_batch``, ``energy_batch``) equals its one-session method applied to every item,
    within :data:`BATCH_TOLERANCE` on floats, for a batch of sessions that differ in seed."""
    plugin = subject.fresh()
    batch_methods = [m for m in ("init_state_batch", "step_batch", "project_batch", "energy_batch")
                     if callable(getattr(plugin, m, None))]
    if not batch_methods:
        return
    seed = int(subject.ctx.get("seed", 0))
    ctxs = [{**subject.ctx, "seed": seed + k} for k in range(BATCH_SIZE)]
    states = [plugin.init_state(subject.x0, dict(c)) for c in ctxs]

    def agree(method: str, got: Any, want: list[Any]) -> None:
        got = list(got)
        assert len(got) == len(want), f"{method} returned {len(got)} results for {len(want)} items"
        for k, (g, w) in enumerate(zip(got, want)):
            if isinstance(w, IRPState):
                assert isinstance(g, IRPState), f"{method} item {k} is {type(g).__name__}, expected IRPState"
                assert g.step == w.step, f"{method} item {k}: step {g.step} != {w.step}"
                g, w = plugin.export_state(g), plugin.export_state(w)
            assert_trees_equal(w, g, f"{method} item {k} and its one-session method", tol=BATCH_TOLERANCE)

    if "init_state_batch" in batch_methods:
        agree("init_state_batch", plugin.init_state_batch([subject.x0] * BATCH_SIZE, [dict(c) for c in ctxs]), states)
    for _ in range(min(subject.steps, 2)):
        if "energy_batch" in batch_methods:
            agree("energy_batch", plugin.energy_batch(states), [float(plugin.energy(s)) for s in states])
        stepped = [plugin.step(s, None) for s in states]
        if "step_batch" in batch_methods:
            agree("step_batch", plugin.step_batch(states), stepped)
        states = [plugin.project(s) for s in stepped]
        if "project_batch" in batch_methods:
            agree("project_batch", plugin.project_batch(stepped), states)


CHECKS: tuple[Callable[[_Subject], None], ...] = (
    check_contract,
    check_finite_energies,
    check_step_does_not_mutate,
    check_deterministic,
    check_halts_within_max_steps,
    check_export_round_trip,
    check_resume_equals_uninterrupted,
    check_project_idempotent,
    check_batch_methods_agree,
)


def _subject(factory: Any, x0: Any, ctx: Mapping[str, Any] | None, steps: int) -> _Subject:
    cls = factory.func if isinstance(factory, functools.partial) else factory
    name = getattr(cls, "name", None) or getattr(cls, "__qualname__", repr(factory))
    if x0 is None and ctx is None:
        example = getattr(cls, "example", None)
        if example is None:
            raise ValueError(f"plugin {name!r} has no example() classmethod: pass x0= and ctx= to check_plugin")
        x0, ctx = example()
    return _Subject(factory, x0, dict(ctx or {}), steps, str(name))


def _run(check: Callable[[_Subject], None], subject: _Subject) -> CheckResult:
    label = check.__name__.removeprefix("check_")
    try:
        check(subject)
    except Exception as exc:  # noqa: BLE001 - a failing plugin may raise anything
        detail = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
        return CheckResult(label, subject.name, False, detail)
    return CheckResult(label, subject.name, True)


def check_plugin(factory: Any, x0: Any = None, ctx: Mapping[str, Any] | None = None, *,
                 steps: int = DEFAULT_STEPS, raise_on_failure: bool = True) -> ConformanceReport:
    """Run every conformance check on the plugin made by ``factory()`` (a class or callable).

    Raises :class:`ConformanceError` naming the failed checks and the plugin unless
    ``raise_on_failure`` is False; returns the report either way.
    """
    subject = _subject(factory, x0, ctx, steps)
    report = ConformanceReport(subject.name, tuple(_run(check, subject) for check in CHECKS))
    if raise_on_failure and not report.passed:
        lines = "; ".join(f"{r.check}: {r.detail}" for r in report.failures)
        raise ConformanceError(f"plugin {subject.name!r} failed {len(report.failures)} check(s): {lines}")
    return report


def parametrize_with_checks(factories: Iterable[Any], *, steps: int = DEFAULT_STEPS) -> Any:
    """A ``pytest.mark.parametrize`` over (plugin, check): one test per check per plugin.

    Usage::

        @parametrize_with_checks([MyPlugin])
        def test_conformance(plugin_check):
            plugin_check()
    """
    import pytest

    params = []
    for factory in factories:
        subject = _subject(factory, None, None, steps)
        for check in CHECKS:
            def run(check: Callable[[_Subject], None] = check, subject: _Subject = subject) -> None:
                result = _run(check, subject)
                if not result.passed:
                    raise ConformanceError(f"plugin {result.plugin!r} failed check {result.check}: {result.detail}")
            params.append(pytest.param(run, id=f"{subject.name}-{check.__name__.removeprefix('check_')}"))
    return pytest.mark.parametrize("plugin_check", params)
