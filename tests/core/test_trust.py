"""Trust metrics: incremental values equal the documented formulas computed directly."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sage_core import EnergyHistory, trust_metrics

energies = st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=50)


@given(energies)
def test_metrics_match_formulas(es):
    m = trust_metrics(EnergyHistory.of(es))
    n = len(es) - 1
    assert m.steps == n
    if n == 0:
        assert (m.monotonicity, m.dE_variance, m.convergence_rate) == (0.0, 0.0, 0.0)
        return
    d = np.diff(np.array(es, dtype=np.float64))
    assert m.monotonicity == pytest.approx(np.mean(d < 0))
    assert 0.0 <= m.monotonicity <= 1.0
    assert m.dE_variance >= 0.0
    assert m.dE_variance == pytest.approx(np.var(d), rel=1e-6, abs=1e-6 * (1 + np.mean(d * d)))
    assert m.convergence_rate == pytest.approx((es[0] - es[-1]) / (n * max(abs(es[0]), 1e-12)))


def test_monotone_descent_has_full_monotonicity_and_positive_rate():
    m = trust_metrics(EnergyHistory.of([8.0, 4.0, 2.0, 1.0]))
    assert m.monotonicity == 1.0 and m.convergence_rate == pytest.approx(7 / 24)


def test_rising_energy_has_negative_rate():
    m = trust_metrics(EnergyHistory.of([1.0, 2.0, 3.0]))
    assert m.monotonicity == 0.0 and m.convergence_rate < 0
