"""Trust metrics computed from an energy history.

With energies ``e_0 .. e_n`` and steps ``d_i = e_i - e_(i-1)`` for ``i = 1..n``:

- ``monotonicity = #{i : d_i < 0} / n`` — share of steps that lowered energy, in [0, 1];
- ``dE_variance = mean(d_i^2) - mean(d_i)^2`` — population variance of the steps, >= 0;
- ``convergence_rate = (e_0 - e_n) / (n * max(|e_0|, tiny))`` — energy drop per step relative
  to the initial energy; positive when converging, negative when energy grew.

A history with no step has all three equal to 0. The values are computed from running sums in
:class:`~sage_core.history.EnergyHistory`, so reading them costs O(1).
"""

from __future__ import annotations

import attrs

from .history import EnergyHistory

_TINY = 1e-12


@attrs.frozen(slots=True)
class TrustMetrics:
    """Monotonicity, variance of dE and normalised convergence rate of one run."""

    monotonicity: float
    dE_variance: float
    convergence_rate: float
    steps: int


def trust_metrics(history: EnergyHistory) -> TrustMetrics:
    """Compute :class:`TrustMetrics` from ``history`` (formulas in the module docstring)."""
    n = history.steps
    if n == 0:
        return TrustMetrics(0.0, 0.0, 0.0, 0)
    mean = history.sum_d / n
    variance = max(history.sum_d2 / n - mean * mean, 0.0)
    first, last = history.energies[0], history.energies[-1]
    rate = (first - last) / (n * max(abs(first), _TINY))
    return TrustMetrics(history.decreases / n, variance, rate, n)
