"""The symbolic explainer and the claim checker: the checker accepts the explainer's own text and
rejects each kind of false claim."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.puzzles import maze, sudoku
from plugins.puzzles.claims import check_explanation
from plugins.puzzles.explain import (PHRASES, Placement, detokenize, explain_sudoku, maze_text, phrase,
                                     sudoku_text, tokenize)


def _puzzle(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return sudoku.make_puzzle(n, np.random.default_rng(seed))


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([4, 6]), seed=st.integers(0, 10_000), style=st.integers(0, 10_000))
def test_checker_accepts_explainer_text(n: int, seed: int, style: int) -> None:
    p, s = _puzzle(n, seed)
    steps = explain_sudoku(p, s)
    assert len(steps) == int((p == 0).sum())
    result = check_explanation(p, s, sudoku_text(steps, np.random.default_rng(style)))
    assert result.all_true, [c for c in result.claims if not c.true]
    assert result.coverage == 1.0 and result.parse_failures == 0


def test_nine_by_nine_and_several_solutions() -> None:
    p, s = _puzzle(9, 3)
    assert check_explanation(p, s, sudoku_text(explain_sudoku(p, s))).all_true
    p, s = sudoku.make_puzzle(6, np.random.default_rng(5), blanks=30, unique=False)
    steps = explain_sudoku(p, s)
    assert check_explanation(p, s, sudoku_text(steps)).all_true
    assert "choice" in {pl.reason for pl in steps}  # 30 random blanks of 36 leave several solutions


def test_contradiction_where_singles_stop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(400):
        p, s = sudoku.make_puzzle(6, rng, blanks=26)
        steps = explain_sudoku(p, s)
        if any(pl.reason == "contradiction" for pl in steps):
            assert check_explanation(p, s, sudoku_text(steps)).all_true
            return
    pytest.fail("no 6x6 puzzle in 400 needed a contradiction step")


def _first(p: np.ndarray, s: np.ndarray) -> tuple[list[Placement], str]:
    steps = explain_sudoku(p, s)
    return steps, sudoku_text(steps)


def test_rejects_wrong_value() -> None:
    p, s = _puzzle(6, 1)
    steps, text = _first(p, s)
    pl = steps[0]
    wrong = pl.digit % 6 + 1
    lines = text.split("\n")
    lines[0] = phrase(Placement(pl.row, pl.col, wrong, "naked", 0, 1))
    claim = check_explanation(p, s, "\n".join(lines)).claims[0]
    assert not claim.true and "wrong value" in claim.why


def test_rejects_wrong_reason() -> None:
    p, s = _puzzle(6, 2)
    steps, _ = _first(p, s)
    grid = p.copy()
    for pl in steps:  # a placement whose cell is not a naked single at that point
        if pl.reason != "naked":
            text = "\n".join(phrase(q) for q in steps[:steps.index(pl)])
            text += "\n" + phrase(Placement(pl.row, pl.col, pl.digit, "naked", 0, 1))
            claim = check_explanation(p, s, text).claims[-1]
            assert not claim.true and "can still hold" in claim.why
            return
        grid[pl.row, pl.col] = pl.digit
    pytest.fail("every placement was a naked single")


def test_rejects_wrong_unit_and_digit_in_reason() -> None:
    p, s = _puzzle(6, 4)
    pl = next(q for q in explain_sudoku(p, s) if q.round == 1)
    r, c, d = pl.row + 1, pl.col + 1, pl.digit
    other_row = r % 6 + 1
    bad_unit = f"r{r}c{c} = {d}: the only cell in row {other_row} that can hold {d}"
    assert "not in row" in check_explanation(p, s, bad_unit).claims[0].why
    bad_digit = f"r{r}c{c} = {d}: the only cell in row {r} that can hold {d % 6 + 1}"
    assert "wrong reason" in check_explanation(p, s, bad_digit).claims[0].why


def test_rejects_reason_that_does_not_hold_yet() -> None:
    p, s = _puzzle(6, 6)
    steps = explain_sudoku(p, s)
    late = [pl for pl in steps if pl.round > 1 and pl.reason != "contradiction"]
    assert late, "puzzle needs a second round"
    result = check_explanation(p, s, phrase(late[0]))  # stated before the placements it needs
    assert not result.claims[0].true
    in_order = check_explanation(p, s, sudoku_text(steps))
    assert in_order.claims[steps.index(late[0])].true


@pytest.mark.parametrize("text", ["", "hello world", "r1c1 = : because", "r1c1 = 3: it just is",
                                  "r9c9 = 1: no other digit fits this cell"])
def test_rejects_unparseable_and_missing(text: str) -> None:
    p, s = _puzzle(4, 7)
    result = check_explanation(p, s, text)
    assert not result.all_true
    assert len(result.missing) == int((p == 0).sum())
    assert result.n_false == len([x for x in text.split("\n") if x.strip()])


def test_rejects_given_and_repeated_cells() -> None:
    p, s = _puzzle(4, 8)
    steps, text = _first(p, s)
    r, c = map(int, np.argwhere(p > 0)[0])
    given_claim = f"r{r + 1}c{c + 1} = {s[r, c]}: no other digit fits this cell"
    assert "given" in check_explanation(p, s, given_claim).claims[0].why
    first = text.split("\n")[0]
    twice = check_explanation(p, s, first + "\n" + first)
    assert twice.claims[0].true and "already filled" in twice.claims[1].why


def test_bad_inputs_are_named() -> None:
    p, s = _puzzle(4, 9)
    with pytest.raises(ValueError, match="unsolved"):
        explain_sudoku(p, p)
    broken = s.copy()
    broken[0, 0], broken[0, 1] = broken[0, 1], broken[0, 0]
    with pytest.raises(ValueError, match="invalid"):
        check_explanation(p if p[0, 0] == 0 and p[0, 1] == 0 else np.zeros_like(p), broken, "")
    with pytest.raises(ValueError, match="n x n"):
        explain_sudoku(np.zeros((5, 5), int), np.ones((5, 5), int))
    with pytest.raises(TypeError, match="str"):
        check_explanation(p, s, None)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(PHRASES)), st.integers(0, 9), st.integers(1, 6))
def test_tokenize_round_trips(group: str, variant: int, digit: int) -> None:
    reason = {"hidden": "box"}.get(group, group)
    text = phrase(Placement(2, 3, digit, reason, 2 if reason == "box" else 0), variant)
    assert detokenize(tokenize(text)) == text


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_maze_text_checks(seed: int) -> None:
    x, y = maze.make_puzzle(11, np.random.default_rng(seed))
    lines = maze.render(x)
    text = maze_text(x, y)
    assert check_explanation(lines, y, text).all_true
    moves = maze.distance(x)
    assert text.endswith(f"reach G in {moves} moves")
    wrong = text.replace(f"reach G in {moves}", f"reach G in {moves + 1}")
    assert check_explanation(lines, y, wrong).claims[-1].true is False
    first = text.split(": ", 1)[1].split(",")[0]  # e.g. "left 2"
    direction, k = first.split()
    flipped = text.replace(first, f"{direction} {int(k) + 1}", 1)
    assert not check_explanation(lines, y, flipped).claims[0].true
