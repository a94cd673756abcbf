"""Composable halting policies. Each returns a HaltDecision with a reason, or None to go on.

Combine with ``|``: ``MaxSteps(50) | Threshold(0.0) | Plateau(1e-4, 5)`` halts on whichever
fires first (checked left to right). An energy of ``0.0`` is a value like any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import attrs

from .history import EnergyHistory


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

    def __attrs_post_init__(self) -> None:
        # Bound methods resolved once: the check runs every step.
        object.__setattr__(self, "_checks", tuple(policy.check for policy in self.policies))

    @classmethod
    def of(cls, *policies: HaltPolicy) -> AnyOf:
        """Build a flat AnyOf, splicing nested AnyOf members in order."""
        flat: list[HaltPolicy] = []
        for policy in policies:
            flat.extend(policy.policies if isinstance(policy, AnyOf) else (policy,))
        return cls(tuple(flat))

    def check(self, history: EnergyHistory) -> HaltDecision | None:
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


def default_policy(max_steps: int = 100) -> AnyOf:
    """The policy used when a plugin or caller names none: finite, budget, max steps."""
    return AnyOf.of(NonFinite(), BudgetExhausted(), MaxSteps(max_steps))


def any_of(policies: Iterable[HaltPolicy]) -> AnyOf:
    """Combine an iterable of policies (e.g. built from config) into one AnyOf."""
    return AnyOf.of(*policies)
