"""Property tests of the halting policies against direct computations."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sage_core import (AnyOf, BudgetExhausted, Diverging, EnergyHistory, MaxSteps, NonFinite, Plateau,
                       Threshold, default_policy)

energies = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40)


@given(energies, st.integers(1, 50))
def test_max_steps_fires_exactly_at_n(es, n):
    decision = MaxSteps(n).check(EnergyHistory.of(es))
    assert (decision is not None) == (len(es) - 1 >= n)
    if decision:
        assert decision.policy == "max_steps" and str(n) in decision.reason


@given(energies, st.floats(-1e6, 1e6, allow_nan=False))
def test_threshold_compares_last_energy(es, target):
    decision = Threshold(target).check(EnergyHistory.of(es))
    assert (decision is not None) == (es[-1] <= target)


def test_zero_energy_is_a_value_not_missing():
    history = EnergyHistory.of([3.0, 1.0, 0.0])
    assert history.last == 0.0
    assert Threshold(0.0).check(history).policy == "threshold"
    assert Threshold(-1e-9).check(history) is None


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=30), st.integers(2, 10))
def test_plateau_slope_is_least_squares_over_whole_window(es, window):
    history = EnergyHistory.of(es)
    slope = history.slope(window)
    if len(es) < window:
        assert math.isnan(slope) and Plateau(1.0, window).check(history) is None
        return
    expected = np.polyfit(np.arange(window), np.array(es[-window:]), 1)[0]
    assert slope == pytest.approx(expected, rel=1e-6, abs=1e-6)
    eps = abs(expected) * 1.5 + 1e-9
    assert Plateau(eps, window).check(history) is not None


def test_plateau_is_not_fooled_by_equal_endpoints():
    # Ends are equal (end-to-end slope 0) but the window clearly trends: not a plateau.
    history = EnergyHistory.of([5.0, 1.0, 2.0, 3.0, 5.0])
    assert Plateau(0.1, 5).check(history) is None
    assert Plateau(0.1, 5).check(EnergyHistory.of([1.0, 1.0001, 0.9999, 1.0, 1.0])) is not None


@given(energies, st.integers(1, 6))
def test_diverging_counts_consecutive_rises(es, k):
    run = 0
    for a, b in zip(es, es[1:]):
        run = run + 1 if b > a else 0
    assert (Diverging(k).check(EnergyHistory.of(es)) is not None) == (run >= k)


@given(st.lists(st.floats(0, 10), min_size=1, max_size=20), st.floats(0.5, 100))
def test_budget_exhausted_reads_spent(costs, budget):
    history = EnergyHistory(budget=budget)
    history.append(1.0)
    for cost in costs:
        history.append(1.0, cost)
    assert (BudgetExhausted().check(history) is not None) == (sum(costs) >= budget)
    assert BudgetExhausted().check(EnergyHistory.of([1.0] * 5)) is None


@given(energies, st.integers(1, 30), st.floats(-10, 10, allow_nan=False))
def test_any_of_returns_first_firing_policy_in_order(es, n, target):
    history = EnergyHistory.of(es)
    parts = [Threshold(target), MaxSteps(n)]
    combined = parts[0] | parts[1]
    expected = next((d for d in (p.check(history) for p in parts) if d is not None), None)
    assert combined.check(history) == expected
    assert isinstance(combined, AnyOf) and len((combined | NonFinite()).policies) == 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_energy_halts_default_policy(bad):
    decision = default_policy(100).check(EnergyHistory.of([1.0, bad]))
    assert decision is not None and decision.policy == "non_finite"


@pytest.mark.parametrize("make", [lambda: MaxSteps(0), lambda: Plateau(0.0), lambda: Plateau(1.0, 1), lambda: Diverging(0)])
def test_invalid_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()
