"""Composable halting policies. Each returns a HaltDecision with a reason, or None to go on.

Combine with ``|``: ``MaxSteps(50) | Threshold(0.0) | Plateau(1e-4, 5)`` halts on whichever
fires first (checked left to right). An energy of ``0.0`` is a value like any other.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from operator import mul
from typing import Any, Protocol, runtime_checkable

import attrs

from .history import EnergyHistory, _slope_weights


@attrs.frozen(slots=True)
class HaltDecision:
    """Why a run stopped: ``policy`` is the policy's name, ``reason`` a human-readable line."""

    policy: str
    reason: str


@runtime_checkable
class HaltPolicy(Protocol):
    """Anything with ``check(history) -> HaltDecision | None``."""

    def check(self, history: EnergyHistory) -> HaltDecision | None: ...


class _Combinable:
    """Mixin that gives policies ``a | b`` composition."""

    __slots__ = ()

    def __or__(self, other: HaltPolicy) -> AnyOf:
        return AnyOf.of(self, other)  # type: ignore[arg-type]


@attrs.frozen(slots=True)
class AnyOf(_Combinable):
    """Halts with the first of ``policies`` (in order) that halts."""

    policies: tuple[HaltPolicy, ...]
    _checks: tuple = attrs.field(init=False, eq=False, repr=False)
    _fused: Callable[[EnergyHistory], HaltDecision | None] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Bound methods resolved once: the check runs every step.
        object.__setattr__(self, "_checks", tuple(policy.check for policy in self.policies))
        object.__setattr__(self, "_fused", _fuse(self.policies, self._checks, self._check_each))

    def __getstate__(self) -> dict[str, Any]:
        return {"policies": self.policies}  # the checks are derived (and the fused one is generated code)

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "policies", state["policies"])
        self.__attrs_post_init__()

    @classmethod
    def of(cls, *policies: HaltPolicy) -> AnyOf:
        """Build a flat AnyOf, splicing nested AnyOf members in order."""
        flat: list[HaltPolicy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, AnyOf) else (policy,))
        return cls(tuple(flat))

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        return self._fused(history)

    def _check_each(self, history: EnergyHistory) -> HaltDecision | None:
        for check in self._checks:
            decision = check(history)
            if decision is not None:
                return decision
        return None


def _positive(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(slots=True)
class MaxSteps(_Combinable):
    """Halts once ``n`` refinement steps have been taken."""

    n: int = attrs.field(validator=_positive)

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        if len(history.energies) - 1 >= self.n:
            return HaltDecision("max_steps", f"reached the maximum of {self.n} steps")
        return None


@attrs.frozen(slots=True)
class Threshold(_Combinable):
    """Halts when energy is at or below ``target`` (e.g. 0 constraint violations = verified)."""

    target: float

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        energies = history.energies
        if energies and energies[-1] <= self.target:
            return HaltDecision("threshold", f"energy {energies[-1]:.6g} <= target {self.target:.6g}")
        return None


@attrs.frozen(slots=True)
class Plateau(_Combinable):
    """Halts when the least-squares energy slope over the last ``window`` points is within ``eps``.

    ``|slope| < eps`` where the slope is fitted to all ``window`` energies, so a run that is
    still moving inside the window is not mistaken for converged.
    """

    eps: float = attrs.field(validator=_positive)
    window: int = attrs.field(default=5, validator=attrs.validators.ge(2))

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        if len(history.energies) < self.window:
            return None
        slope = history.slope(self.window)
        if abs(slope) < self.eps:
            return HaltDecision("plateau", f"|slope| {abs(slope):.3g} < {self.eps:.3g} over {self.window} steps")
        return None


@attrs.frozen(slots=True)
class Diverging(_Combinable):
    """Halts when energy rose ``k`` times in a row."""

    k: int = attrs.field(default=3, validator=_positive)

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        if history.rises_in_a_row >= self.k:
            return HaltDecision("diverging", f"energy rose {history.rises_in_a_row} steps in a row")
        return None


@attrs.frozen(slots=True)
class BudgetExhausted(_Combinable):
    """Halts when the ATP spent reaches the history's budget (never without a budget)."""

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        budget = history.budget
        if budget is not None and history.spent >= budget:
            return HaltDecision("budget_exhausted", f"spent {history.spent:.6g} of {budget:.6g} ATP")
        return None


@attrs.frozen(slots=True)
class NonFinite(_Combinable):
    """Halts when the energy is NaN or infinite: the plugin has failed."""

    def check(self, history: EnergyHistory) -> HaltDecision | None:
        energies = history.energies
        if energies and not math.isfinite(energies[-1]):
            return HaltDecision("non_finite", f"energy is {energies[-1]!r}")
        return None


def _condition(policy: HaltPolicy, i: int, env: dict[str, Any]) -> str | None:
    """A Python expression over ``history``, ``energies`` (its list) and ``n`` (their number)
    that is true exactly when ``policy.check(history)`` halts, for the built-in policies (the
    very tests of their ``check``); None for any other policy (or a subclass)."""
    kind = type(policy)
    if kind is NonFinite:
        return "n and not isfinite(energies[-1])"
    if kind is MaxSteps:
        env[f"a{i}"] = policy.n
        return f"n - 1 >= a{i}"
    if kind is Threshold:
        env[f"a{i}"] = policy.target
        return f"n and energies[-1] <= a{i}"
    if kind is Plateau and type(policy.window) is int:  # history.slope(window), inlined
        env[f"a{i}"], env[f"w{i}"] = policy.eps, _slope_weights(policy.window)
        return f"n >= {policy.window} and abs(sum(map(mul, w{i}, energies[-{policy.window}:]))) < a{i}"
    if kind is Diverging:
        env[f"a{i}"] = policy.k
        return f"history.rises_in_a_row >= a{i}"
    if kind is BudgetExhausted:
        return "history.budget is not None and history.spent >= history.budget"
    return None


def _fuse(policies: tuple[HaltPolicy, ...], checks: tuple, each: Callable) -> Callable:
    """``AnyOf.check`` as one function: the built-in policies' tests inline, in order; a policy
    whose test holds (or any other policy) is asked through its own ``check``, which returns the
    decision. Same decisions as calling each ``check`` in turn, one call per step instead of one
    per policy. A history of another class than EnergyHistory gets the plain loop ``each``."""
    env: dict[str, Any] = {"EnergyHistory": EnergyHistory, "isfinite": math.isfinite, "mul": mul, "each": each}
    lines = ["def check(history):",
             "    if history.__class__ is not EnergyHistory:",
             "        return each(history)",
             "    energies = history.energies",
             "    n = len(energies)"]
    for i, (policy, check) in enumerate(zip(policies, checks)):
        env[f"c{i}"] = check
        condition = _condition(policy, i, env)
        if condition is None:
            lines += [f"    decision = c{i}(history)", "    if decision is not None:", "        return decision"]
        else:
            lines += [f"    if {condition}:", f"        decision = c{i}(history)",
                      "        if decision is not None:", "            return decision"]
    lines.append("    return None")
    exec(compile("\n".join(lines), "<sage_core.halting.AnyOf.check>", "exec"), env)  # noqa: S102 - our own text
    return env["check"]


def check_of(policy: HaltPolicy) -> Callable[[EnergyHistory], HaltDecision | None]:
    """``policy.check``, or for an :class:`AnyOf` the function it delegates to (what a loop
    that checks every step should call: one call fewer)."""
    if type(policy) is AnyOf:
        return policy._fused  # noqa: SLF001
    return policy.check


def default_policy(max_steps: int = 100) -> AnyOf:
    """The policy used when a plugin or caller names none: finite, budget, max steps."""
    return AnyOf.of(NonFinite(), BudgetExhausted(), MaxSteps(max_steps))


def any_of(policies: Iterable[HaltPolicy]) -> AnyOf:
    """Combine an iterable of policies (e.g. built from config) into one AnyOf."""
    return AnyOf.of(*policies)
