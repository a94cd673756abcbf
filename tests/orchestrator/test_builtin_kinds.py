"""The built-in plugins' declared kinds: pipelines of them are checked when built, and bridges read
each plugin's output value."""

import pytest

from bridges import bridge
from orchestrator import Orchestrator, Pipeline, PipelineError
from sage_core import get_registry


def test_hrm_declares_its_kinds():
    hrm = get_registry().plugin_class("hrm")
    assert hrm.input_kind == ("sudoku_grid", "maze_grid") and hrm.output_kind == "solved_puzzle"


def test_a_bridge_of_the_wrong_kind_into_the_hrm_is_refused_naming_the_edge():
    to_text = bridge("to_text", source_kind="any", target_kind="text")(lambda state: "x")
    p = Pipeline()
    p.add_node("a", "toy")
    p.add_node("solver", "hrm")
    with pytest.raises(PipelineError, match=r"edge 'a'->'solver': bridge 'to_text' produces 'text' but node "
                                            r"'solver' \(hrm\) takes \('sudoku_grid', 'maze_grid'\)"):
        p.add_edge("a", "solver", to_text)


@pytest.mark.parametrize("task", ["sudoku4", "maze11"])
def test_hrm_output_is_a_solved_puzzle(task):
    hrm = get_registry().plugin_class("hrm")
    puzzle = hrm.held_out_puzzles(task, 1, seed=4242)[0]
    got = {}
    take = bridge("take", source_kind="solved_puzzle", target_kind="any")(lambda state: got.setdefault("v", state.x))
    p = Pipeline()
    p.add_node("solver", "hrm", input=puzzle, halt={"max_steps": 32})
    p.add_node("after", "toy", halt={"max_steps": 1})
    p.add_edge("solver", "after", take, to="solved")
    result = Orchestrator(p).run()
    value = got["v"]
    assert set(value) == {"puzzle", "solution", "verified"}
    assert value["verified"] == (result["solver"].reason == "verified")
    assert value["puzzle"] == puzzle
    if task.startswith("sudoku"):
        n = len(puzzle)
        assert all(sorted(row) == list(range(1, n + 1)) for row in value["solution"]) or not value["verified"]
        assert all(g in (0, s) for grow, srow in zip(puzzle, value["solution"]) for g, s in zip(grow, srow))
    else:
        path = value["solution"]
        assert puzzle[path[0][0]][path[0][1]] == "S"
        assert all(abs(r1 - r2) + abs(c1 - c2) == 1 for (r1, c1), (r2, c2) in zip(path, path[1:]))
        assert all(puzzle[r][c] != "#" for r, c in path)
        assert (puzzle[path[-1][0]][path[-1][1]] == "G") == value["verified"]
