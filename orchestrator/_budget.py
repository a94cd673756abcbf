"""ATP arithmetic: the initial split by trust with a floor, and the hand-over of freed ATP.

Initial split of a budget ``B`` over nodes ``i`` with trust ``t_i`` and floor ``f_i``::

    a_i = f_i + (B - sum_j f_j) * t_i / sum_j t_j

(floors are scaled down proportionally if they add up to more than ``B``). The default floor of
a node is ``floor_fraction * B / n`` (10 % of an equal share). When a node halts, its unspent
ATP ``a_i - spent_i`` is split over the nodes that have not halted, again by trust, and they
may spend it: a node that exhausted its own share and was waiting (``starved``) runs again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def split_budget(total: float, names: Sequence[str], trust: Mapping[str, float],
                 floors: Mapping[str, float]) -> dict[str, float]:
    """Initial allocation per node (see the module docstring)."""
    if total < 0:
        raise ValueError(f"budget must be >= 0 ATP, got {total}")
    if not names:
        return {}
    floor_sum = sum(floors[n] for n in names)
    scale = min(1.0, total / floor_sum) if floor_sum > 0 else 1.0
    rest = share(max(total - floor_sum * scale, 0.0), names, trust)
    return {n: floors[n] * scale + rest.get(n, 0.0) for n in names}


def share(amount: float, names: Sequence[str], trust: Mapping[str, float]) -> dict[str, float]:
    """Split freed ``amount`` over ``names`` by trust (equal shares if all trust is 0)."""
    if not names or amount <= 0:
        return {}
    weights = [max(trust[n], 0.0) for n in names]
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(names), float(len(names))
    return {n: amount * (w / total) for n, w in zip(names, weights)}
