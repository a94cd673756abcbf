"""The pieces of the visual solver's feedback loop, each alone: the HRM's ``on_conflict`` and
``receive('input')``, the vision package's ``cell_conflicts`` bridge, the explainer's claim marks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.hrm.plugin import HRMReasoner
from plugins.language.plugin import LanguageExplainer
from plugins.puzzles import explain, sudoku
from plugins.vision.conflicts import cell_conflicts, flagged_givens
from plugins.vision.feedback import sudoku_conflicts
from sage_core import IRPState, get_registry

PUZZLE = [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]
CLASH = [[4, 3, 0, 4], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]  # two 4s in row 0


def test_by_default_the_hrm_still_refuses_givens_that_conflict():
    with pytest.raises(ValueError, match="no solution"):
        HRMReasoner().init_state(CLASH, {})
    with pytest.raises(ValueError, match="on_conflict must be 'raise' or 'report'"):
        HRMReasoner(on_conflict="ignore")


def test_reported_conflicts_leave_the_answer_unverified_then_a_corrected_grid_is_solved():
    hrm = HRMReasoner(on_conflict="report")
    state = hrm.init_state(CLASH, {"seed": 3})
    for _ in range(3):
        state = hrm.step(state)
    assert not hrm.output(state)["verified"] and hrm.energy(state) >= 1.0
    assert flagged_givens(hrm.output(state)["puzzle"], False)[0].tolist() == [True, False, False, True]
    again = hrm.receive(state, "input", CLASH)
    assert again is state  # the same grid changes nothing
    fixed = hrm.receive(state, "input", PUZZLE)
    assert fixed.step == state.step and fixed.meta["seed"] == 3 and fixed.meta["mode"] == state.meta["mode"]
    assert fixed.x["puzzle"].tolist() == np.asarray(PUZZLE).reshape(-1).tolist()
    for _ in range(8):
        if hrm.halt_state(fixed) is not None:
            break
        fixed = hrm.step(fixed)
    out = hrm.output(fixed)
    assert out["verified"] and out["puzzle"] == PUZZLE
    with pytest.raises(ValueError, match="receives a new puzzle as 'input'"):
        hrm.receive(state, "feedback", PUZZLE)


def test_the_bridge_is_registered_with_its_kinds():
    bridge = get_registry().get("bridge", "cell_conflicts")
    assert (bridge.source_kind, bridge.target_kind) == ("solved_puzzle", "cell_conflicts")
    with pytest.raises(ValueError, match="mazes have no cell conflicts"):
        cell_conflicts(IRPState(x={"puzzle": ["S #", "  G", "   "], "solution": [], "verified": False}))


@st.composite
def readings(draw):
    """A solvable 4x4 or 6x6 puzzle with up to 3 of its givens (or blanks) misread."""
    n = draw(st.sampled_from([4, 6]))
    puzzle, _ = sudoku.make_puzzle(n, np.random.default_rng(draw(st.integers(0, 2**31))))
    grid = puzzle.copy()
    for _ in range(draw(st.integers(0, 3))):
        r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        grid[r, c] = draw(st.integers(0, n))
    return grid


@settings(max_examples=60, deadline=None)
@given(readings(), st.booleans())
def test_flagged_cells_are_givens_and_an_unsolvable_reading_always_flags_some(grid, verified):
    flags = np.asarray(cell_conflicts(IRPState(x={"puzzle": grid.tolist(), "solution": None, "verified": verified})))
    assert flags.shape == grid.shape and flags.dtype == bool
    assert not (flags & (grid == 0)).any()  # only givens are ever flagged
    clash = sudoku_conflicts(grid)
    if verified:
        assert not flags.any()
    elif clash.any():  # the repeated digits, and only them
        assert (flags == clash).all()
    elif sudoku.has_solution(grid):  # nothing for the reader to re-read
        assert not flags.any()
    else:  # nothing repeats yet there is no solution: every given is suspect
        assert (flags == (grid > 0)).all() and flags.any()


def test_claims_are_marked_by_the_checker():
    puzzle, solution = sudoku.make_puzzle(4, np.random.default_rng(5))
    text = explain.sudoku_text(explain.explain_sudoku(puzzle, solution))
    explainer = LanguageExplainer()
    state = explainer.init_state({"puzzle": puzzle.tolist(), "solution": solution.tolist(), "verified": True}, {})
    claims = LanguageExplainer.checked_claims(state.evolve(meta={**state.meta, "text": text}))
    assert len(claims) == int((puzzle == 0).sum()) and all(ok for _, ok in claims)
    lines = text.split("\n")
    bad = lines[0].replace(str(int(solution[np.nonzero(puzzle == 0)][0])), "9", 1)
    claims = LanguageExplainer.checked_claims(state.evolve(meta={**state.meta, "text": "\n".join([bad] + lines[1:])}))
    assert [ok for _, ok in claims] == [False] + [True] * (len(lines) - 1)
