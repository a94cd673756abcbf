"""Pieces of the language plugin that need no trained model: vocabulary and slots, corpus,
re-masking, input validation, plans and mazes."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.language.corpus import ar_batch, generate, nat_batch
from plugins.language.decode import blank_cells, guide, initial_tokens, remask, schedule, slot_digits
from plugins.language.grammar import n_semantics
from plugins.language.plan import check_plan, plan_text
from plugins.language.plugin import LanguageExplainer, parse_input
from plugins.language.vocab import MASK_ID, MAX_KEY, PAD_ID, SEP_ID, SLOT_LEN, TOKENS, encode_slot, render
from plugins.puzzles import maze, sudoku
from plugins.puzzles.claims import check_explanation
from plugins.puzzles.explain import REASONS, path_cells


@pytest.fixture(scope="module")
def corpus6():
    return generate(6, 12, seed=123)


def test_corpus_targets_render_to_true_text(corpus6) -> None:
    batch = nat_batch(corpus6, np.arange(12), np.random.default_rng(0))
    assert batch["target"].shape[-1] == SLOT_LEN
    for b in range(12):
        keep = batch["cells"][b] >= 0
        text, _ = render(batch["target"][b][keep].tolist())
        p, s = corpus6.grids(b)
        result = check_explanation(p, s, text)
        assert result.all_true, [c for c in result.claims if not c.true]


def test_ar_batch_holds_the_same_slots(corpus6) -> None:
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    nat, ar = nat_batch(corpus6, np.arange(3), rng_a), ar_batch(corpus6, np.arange(3), rng_b)
    for b in range(3):
        flat = [t for t in nat["target"][b].flatten().tolist() if t != PAD_ID]
        seq = [t for t in ar["target"][b].tolist() if t not in (PAD_ID, SEP_ID)]
        assert flat == seq
        assert ar["target"][b].tolist().count(SEP_ID) == int((nat["cells"][b] >= 0).sum())


def test_render_orders_by_key() -> None:
    idx = {t: i for i, t in enumerate(TOKENS)}
    late = [idx["#2"], idx["r1c1"], idx["="], idx["1"], idx[":"], idx["no"], idx["other"]]
    early = [idx["#1"], idx["r2c2"], idx["="], idx["3"]]
    text, order = render([late, early, [PAD_ID] * 3])
    assert text.split("\n") == ["r2c2 = 3", "r1c1 = 1: no other", "?"]
    assert order == [1, 0, 2]


def test_schedule_decays() -> None:
    n = torch.tensor([170, 34])
    counts = [schedule(n, it, 10).tolist() for it in range(11)]
    assert counts[0] == [0, 0] and counts[10] == [0, 0]
    assert counts[1] == [153, 30]
    assert all(a[0] >= b[0] for a, b in zip(counts[1:], counts[2:]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(0, 60), guided=st.booleans(), keep=st.booleans())
def test_remask_counts_and_rejected_only(seed: int, count: int, guided: bool, keep: bool) -> None:
    g = torch.Generator().manual_seed(seed)
    cells = torch.tensor([[0, 3, 5, -1]])
    tokens, _ = initial_tokens(cells)
    tokens = torch.where(tokens == MASK_ID, torch.randint(4, 20, tokens.shape, generator=g), tokens)
    conf = torch.rand(tokens.shape, generator=g)
    rejected = torch.tensor([[False, True, False, False]]) if guided else None
    rekey = torch.tensor([[False, False, True, False]]) if guided else None
    keep_digit = rejected & keep if guided else None
    out = remask(tokens, conf, cells, torch.tensor([count]), rejected, rekey, keep_digit)
    masked = out == MASK_ID
    assert not masked[0, 3].any()  # padding slot untouched
    if guided:  # the rejected slot (its right digit kept on request) and the dependent's key, nothing else
        assert masked[0, 1].sum() == SLOT_LEN - keep and masked[0, 1, 3] != keep
        assert masked[0, 2].tolist() == [True] + [False] * (SLOT_LEN - 1)
        assert not masked[0, 0].any()
        return
    expected = min(3 * SLOT_LEN, count)
    assert int(masked.sum()) == expected
    valid_conf = conf[0, :3].flatten()
    if 0 < expected:  # the least confident tokens are the ones re-masked
        assert float(conf[masked].max()) <= float(valid_conf.sort().values[expected - 1])


def test_bad_inputs_named() -> None:
    p, s = sudoku.make_puzzle(4, np.random.default_rng(3))
    with pytest.raises(ValueError, match="unsolved"):
        parse_input({"puzzle": p, "solution": None})
    with pytest.raises(ValueError, match="unsolved"):
        parse_input({"puzzle": p, "solution": p})
    wrong = s.copy()
    wrong[0] = wrong[0][::-1]
    with pytest.raises(ValueError, match="invalid"):
        parse_input({"puzzle": np.zeros_like(p), "solution": wrong})
    with pytest.raises(ValueError, match="verified=False"):
        parse_input({"puzzle": p, "solution": s, "verified": False})
    p9, s9 = sudoku.make_puzzle(9, np.random.default_rng(3))
    with pytest.raises(ValueError, match="9x9 not supported"):
        parse_input({"puzzle": p9, "solution": s9})
    with pytest.raises(ValueError, match="must be a dict"):
        parse_input([1, 2, 3])
    with pytest.raises(ValueError, match="plan needs"):
        parse_input({"colour": "red"})
    with pytest.raises(ValueError, match="style"):
        LanguageExplainer().init_state({"puzzle": p, "solution": s}, {"style": "poem"})


def test_blank_cells_row_major() -> None:
    cells = blank_cells(np.array([[0, 1, 0, 2], [3, 0, 4, 1]]))
    assert cells.tolist() == [[0, 2], [1, -1]]


def test_maze_session_is_verified_in_one_step() -> None:
    x, y = maze.make_puzzle(11, np.random.default_rng(4))
    plugin = LanguageExplainer()
    s0 = plugin.init_state({"puzzle": maze.render(x), "solution": y, "verified": True}, {})
    s1 = plugin.step(s0)
    assert s1.energy == 0.0 < s0.energy
    assert plugin.halt_state(s1).policy == "verified"
    assert plugin.output(s1).startswith("from S: ") and plugin.output(s1).endswith(f"{maze.distance(x)} moves")
    cells = [list(c) for c in path_cells(x, y)]  # the HRM's solved_puzzle: the path as cells
    s2 = plugin.step(plugin.init_state({"puzzle": maze.render(x), "solution": cells, "verified": True}, {}))
    assert plugin.output(s2) == plugin.output(s1) and s2.energy == 0.0
    with pytest.raises(ValueError, match="S to G"):
        plugin.init_state({"puzzle": maze.render(x), "solution": np.where(y == maze.PATH, maze.OPEN, y)}, {})


def test_plan_text_is_checked() -> None:
    plan = {"action": [7.31, 0.7], "landing": [4.2, 0.0], "flight_time": 1.234, "trajectory": [[0, 1], [2, 2], [4.2, 0]]}
    text = plan_text(plan)
    assert "7.31 m/s" in text and "40.1 degrees" in text and "1.23 s" in text
    assert check_plan(plan, text).all_true
    assert check_plan(plan, text.replace("7.31", "7.41")).n_false == 1
    assert check_plan(plan, "Throw it.").n_false == len(check_plan(plan, text).claims)
    plugin = LanguageExplainer()
    s = plugin.step(plugin.init_state(plan, {}))
    assert s.energy == 0.0 and plugin.output(s) == text


def test_guide_bans_a_wrong_digit_everywhere() -> None:
    n, R = 4, len(REASONS)
    puzzle = np.array([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]])
    solution = puzzle.copy()
    puzzle[0, 0] = puzzle[1, 1] = 0
    cells = torch.tensor([[0, 5, -1]])
    digits = slot_digits(solution.reshape(1, -1), cells)
    assert digits.tolist() == [[1, 4, 0]]
    sem = lambda key, d, r: key * n * R + (d - 1) * R + r  # noqa: E731  (grammar.candidates' layout)
    banned = torch.zeros((1, 3, n_semantics(n)), dtype=torch.bool)
    choice = torch.tensor([[sem(2, 3, 0), sem(0, 4, 0), -1]])  # slot 0: digit 3, wrong; slot 1: right, true
    rekey, keep = guide(banned, torch.tensor([[True, False, False]]), choice, digits, [(puzzle, solution)], cells)
    view = banned.view(1, 3, MAX_KEY, n, R)
    assert view[0, 0, :, 2, :].all() and view[0, 0].sum() == MAX_KEY * R  # digit 3 everywhere, nothing else
    assert not view[0, 1:].any() and not rekey.any() and not keep.any()


def test_guide_moves_a_claim_to_where_it_holds_and_its_dependents_after_it() -> None:
    """The explainer's claims of a held-out-like 4x4 puzzle all under key #1: one is rejected (its
    single needs a later placement). Its right digit is kept; each of its claims is banned at the
    keys where it would not hold; the two verified claims that need it get their keys re-masked and
    banned below where they would hold. Taking the first key left to each gives a true text."""
    n, R = 4, len(REASONS)
    corpus = generate(4, 20, seed=5)
    p, s = corpus.grids(5)
    placements = {pl.row * n + pl.col: pl for pl in corpus.placements(5)}
    cells = blank_cells(p.reshape(1, -1))
    slots = cells[0].tolist()

    def text(keys: list[int]) -> tuple[str, list[int]]:
        return render([encode_slot(attrs.evolve(placements[c], round=k + 1), 0) for c, k in zip(slots, keys)])

    keys = [0] * len(slots)
    body, order = text(keys)
    rejected = np.zeros(len(slots), dtype=bool)
    for line, claim in zip(order, check_explanation(p, s, body).claims):
        rejected[line] = not claim.true
    assert rejected.sum() == 1
    choice = torch.tensor([[(placements[c].digit - 1) * R + REASONS.index(placements[c].reason) for c in slots]])
    banned = torch.zeros((1, len(slots), n_semantics(n)), dtype=torch.bool)
    rekey, keep = guide(banned, torch.as_tensor(rejected)[None], choice, slot_digits(s.reshape(1, -1), cells),
                        [(p, s)], cells)
    assert keep[0].tolist() == rejected.tolist()
    assert int(rekey.sum()) == 2 and not (rekey[0] & torch.as_tensor(rejected)).any()
    view = banned.view(1, len(slots), MAX_KEY, n, R)
    first = []
    for j, c in enumerate(slots):
        free = [k for k in range(MAX_KEY) if not view[0, j, k, placements[c].digit - 1, REASONS.index(placements[c].reason)]]
        first.append(free[0] if rejected[j] or rekey[0, j] else keys[j])
    assert first != keys and check_explanation(p, s, text(first)[0]).all_true
