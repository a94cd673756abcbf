"""Bridges: built-ins registered through the hook, kind matching, coercion of callables."""

import pytest
import torch

from bridges import ANY, Bridge, as_bridge, bridge, energy_bridge, flatten_bridge, identity_bridge, kinds_match
from sage_core import IRPState, Registry, get_registry


def test_builtins_are_registered_through_sage_register_bridges():
    items = get_registry().items("bridge")
    assert {"identity", "energy", "flatten"} <= set(items)
    assert items["identity"].source == "bridges" and items["identity"].obj is identity_bridge
    import bridges.hooks

    registry = Registry(strict=True, disabled=())
    assert registry.add(bridges.hooks, name="bridges-again")
    assert registry.get("bridge", "flatten") is flatten_bridge


def test_builtin_behaviour():
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    state = IRPState(x=x, energy=0.25)
    out = identity_bridge(state)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()  # a copy, not an alias
    assert identity_bridge(IRPState(x=[1, 2])) == [1, 2]
    assert energy_bridge(state) == 0.25
    assert flatten_bridge(state).shape == (6,)
    assert (flatten_bridge.source_kind, flatten_bridge.target_kind) == ("tensor", "vector")


@pytest.mark.parametrize("produced, expected, ok", [
    ("vector", "vector", True), ("vector", "grid", False), (ANY, "grid", True), ("grid", ANY, True),
    (None, "grid", True), ("grid", None, True),
])
def test_kinds_match(produced, expected, ok):
    assert kinds_match(produced, expected) is ok


def test_decorator_and_coercion():
    @bridge("halve", source_kind="vector", target_kind="vector")
    def halve(state):
        """Half of x."""
        return state.x / 2

    assert isinstance(halve, Bridge) and halve.name == "halve" and halve.doc == "Half of x."
    assert halve(IRPState(x=torch.tensor([2.0]))).item() == 1.0
    assert as_bridge(halve) is halve

    def plain(state):
        return state.step

    coerced = as_bridge(plain)
    assert (coerced.name, coerced.source_kind, coerced.target_kind) == ("plain", ANY, ANY)
    assert coerced(IRPState(x=0, step=4)) == 4
    assert as_bridge(lambda s: 1, name="one").name == "one"
    with pytest.raises(TypeError, match="must be callable"):
        as_bridge(3)


def test_chain_runs_links_in_turn_and_checks_their_kinds():
    from bridges import Bridge, chain
    from sage_core import IRPState

    double = Bridge("double", lambda s: [2 * v for v in s.x], "vector", "vector")
    total = Bridge("total", lambda s: sum(s.x), "vector", "scalar")
    joined = chain(double, total)
    assert joined(IRPState(x=[1, 2, 3])) == 12
    assert (joined.name, joined.source_kind, joined.target_kind) == ("double+total", "vector", "scalar")
    assert chain(double) is double
    with pytest.raises(ValueError, match="bridge 'total' produces 'scalar' but the next one, 'double', reads 'vector'"):
        chain(total, double)


def test_solution_path_reads_a_solved_maze_and_refuses_a_sudoku():
    from bridges import solution_path_bridge
    from sage_core import IRPState

    maze = {"puzzle": ["#####", "#S G#", "#####"], "solution": [[1, 1], [1, 2], [1, 3]], "verified": True}
    assert solution_path_bridge(IRPState(x=maze)) == [(1, 1), (1, 2), (1, 3)]
    with pytest.raises(ValueError, match="not a solved maze"):
        solution_path_bridge(IRPState(x={"puzzle": [[1, 0], [0, 1]], "solution": [[1, 2], [2, 1]]}))
