"""EnergyHistory: the energy trajectory of one refinement, with O(1) running statistics.

Halting policies and trust metrics read it; keeping the sums incremental makes the per-step
bookkeeping cost constant however long a run is.
"""

from __future__ import annotations

import functools
import math
from operator import mul

import attrs


@attrs.define(slots=True, eq=False)
class EnergyHistory:
    """Energies ``e_0 .. e_n`` of a run (``e_0`` = the initial state) plus running sums of dE.

    ``spent`` is the ATP consumed so far and ``budget`` the ATP the run may use (``None`` =
    unlimited); :class:`~sage_core.halting.BudgetExhausted` reads them.
    """

    energies: list[float] = attrs.field(factory=list)
    budget: float | None = None
    spent: float = 0.0
    decreases: int = 0
    rises_in_a_row: int = 0
    sum_d: float = 0.0
    sum_d2: float = 0.0

    @classmethod
    def of(cls, energies: list[float] | tuple[float, ...], budget: float | None = None) -> EnergyHistory:
        """Build a history from a whole energy sequence (tests, post-hoc analysis)."""
        history = cls(budget=budget)
        for energy in energies:
            history.append(energy)
        return history

    def append(self, energy: float, cost: float = 0.0) -> None:
        """Record the energy after one more step (or the initial energy if empty)."""
        energies = self.energies
        if energies:
            d = energy - energies[-1]
            self.sum_d += d
            self.sum_d2 += d * d
            if d < 0.0:
                self.decreases += 1
                self.rises_in_a_row = 0
            elif d > 0.0:
                self.rises_in_a_row += 1
            else:
                self.rises_in_a_row = 0
        energies.append(energy)
        self.spent += cost

    @property
    def steps(self) -> int:
        """Number of refinement steps recorded (energies minus the initial one)."""
        return max(len(self.energies) - 1, 0)

    @property
    def last(self) -> float | None:
        """The latest energy, or ``None`` for an empty history."""
        return self.energies[-1] if self.energies else None

    def slope(self, window: int) -> float:
        """Least-squares slope of the last ``window`` energies per step (``nan`` if too few).

        Uses every point of the window, not just its ends: an oscillating run whose ends
        happen to match still shows its trend.
        """
        if window < 2 or len(self.energies) < window:
            return math.nan
        return sum(map(mul, _slope_weights(window), self.energies[-window:]))


@functools.cache
def _slope_weights(window: int) -> tuple[float, ...]:
    """Weights w_i with slope = sum(w_i * e_i) for a least-squares line through i = 0..window-1."""
    mid = (window - 1) / 2.0
    denominator = window * (window * window - 1) / 12.0
    return tuple((i - mid) / denominator for i in range(window))
