"""The HRM plugin's serving forward and continuous batching: equal to the reference forward and
to stepping sessions one by one (within float tolerance), through the orchestrator's BatchPool."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from plugins.hrm.checkpoint import load_pretrained
from plugins.hrm.config import HRMConfig
from plugins.hrm.evaluate import EVAL_SEED, task_inputs_to_puzzles
from plugins.hrm.inference import FastSegment
from plugins.hrm.model import HRM
from plugins.hrm.plugin import HRMReasoner
from plugins.hrm.tasks import get_task

_FIELDS = {f.name for f in attrs.fields(HRMConfig)}


def _close(ref, got, tol=1e-4) -> None:
    for k in ("z_H", "z_L"):
        torch.testing.assert_close(got[0][k], ref[0][k], atol=tol, rtol=tol)
    for r, g in zip(ref[1:], got[1:]):
        torch.testing.assert_close(g, r, atol=tol, rtol=tol)


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_fast_segment_matches_reference_on_shipped_checkpoint(batch: int) -> None:
    model = load_pretrained("sudoku4")
    fast = FastSegment(model)
    assert fast.supported
    task = get_task("sudoku4")
    x, _ = task.generate(batch, EVAL_SEED + 5, "test")
    x = torch.as_tensor(x)
    carry = model.initial_carry(batch)
    with torch.inference_mode():
        for _ in range(3):  # a few segments, so the carry is a real one
            ref = model.segment(carry, {"inputs": x})
            got = fast(carry, x)
            _close(ref, got)
            assert torch.equal(got[1].argmax(-1), ref[1].argmax(-1))
            carry = ref[0]


def _configs() -> list[dict]:
    out = [{}]
    if "pos_encoding" in _FIELDS:
        out += [{"pos_encoding": "rope2d"}, {"pos_encoding": "learned"}]
    return out


@pytest.mark.parametrize("overrides", _configs())
def test_fast_segment_matches_reference_on_random_models(overrides: dict) -> None:
    torch.manual_seed(0)
    cfg = HRMConfig.for_task("sudoku4", hidden=32, heads=2, H_layers=1, L_layers=2, **overrides)
    model = HRM(cfg).eval()
    with torch.no_grad():  # non-trivial Q head and prefix
        model.q_head.weight.normal_(0, 0.3)
        model.prefix.normal_(0, 0.1)
    fast = FastSegment(model)
    assert fast.supported
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, cfg.vocab, (7, cfg.seq_len), generator=g)
    carry = model.initial_carry(7)
    with torch.inference_mode():
        _close(model.segment(carry, {"inputs": x}), fast(carry, x))
    # weights changed in place (as by an optimizer): the folded projection follows
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    with torch.inference_mode():
        _close(model.segment(carry, {"inputs": x}), fast(carry, x))


def test_fast_segment_falls_back_where_it_does_not_apply() -> None:
    cfg = HRMConfig.for_task("sudoku4", hidden=32, heads=2, H_layers=1, L_layers=1, variant="trm")
    model = HRM(cfg).eval()
    fast = FastSegment(model)
    assert not fast.supported
    x = torch.zeros(2, cfg.seq_len, dtype=torch.long)
    carry = model.initial_carry(2)
    with torch.inference_mode():
        _close(model.segment(carry, {"inputs": x}), fast(carry, x), tol=0)
    if "attn_window" in _FIELDS:
        cfg = HRMConfig.for_task("sudoku4", hidden=32, heads=2, H_layers=1, L_layers=1, attn_window=1)
        assert not FastSegment(HRM(cfg)).supported


def test_fast_segment_outputs_do_not_alias_workspace() -> None:
    model = load_pretrained("sudoku4")
    fast = FastSegment(model)
    g = torch.Generator().manual_seed(2)
    x1, x2 = (torch.randint(0, 5, (4, 16), generator=g) for _ in range(2))
    carry = model.initial_carry(4)
    first = fast(carry, x1)
    kept = [first[0]["z_H"].clone(), first[0]["z_L"].clone(), first[1].clone()]
    fast(carry, x2)
    assert torch.equal(first[0]["z_H"], kept[0]) and torch.equal(first[0]["z_L"], kept[1])
    assert torch.equal(first[1], kept[2])


def test_energy_batch_is_energy() -> None:
    p = HRMReasoner()
    task = get_task("sudoku4")
    x, _ = task.generate(5, EVAL_SEED + 8, "test")
    states = [p.init_state(g, {"seed": i}) for i, g in enumerate(task_inputs_to_puzzles(task, x))]
    for _ in range(2):
        assert p.energy_batch(states) == [p.energy(s) for s in states]
        states = p.step_batch(states)


@pytest.mark.parametrize("mode", ["bare", "irp"])
def test_batch_pool_batched_equals_one_by_one(mode: str) -> None:
    """64 sessions through the BatchPool: batched and one-by-one take the same decisions after
    the same number of steps with the same answers, and energies equal within float tolerance."""
    from orchestrator import BatchPool

    task = get_task("sudoku4")
    x, _ = task.generate(64, EVAL_SEED + 99, "test")
    puzzles = task_inputs_to_puzzles(task, x)
    plugin = HRMReasoner(mode=mode)
    results = {}
    for batched in (True, False):
        pool = BatchPool(plugin, max_batch=64, batched=batched, policy={"max_steps": 12})
        for i, g in enumerate(puzzles):
            pool.submit(g, {"seed": i, "max_steps": 12}, key=i)
        results[batched] = (pool.run(), pool.steps)
    (rb, nb), (rs, ns) = results[True], results[False]
    assert nb == ns
    for i in range(len(puzzles)):
        b, s = rb[i], rs[i]
        assert b.decision.policy == s.decision.policy and b.steps == s.steps
        assert b.state.meta == s.state.meta
        assert np.array_equal(b.state.x["best"], s.state.x["best"])
        np.testing.assert_allclose(b.history.energies, s.history.energies, rtol=1e-5, atol=1e-5)


def _states_equal(a, b) -> None:
    assert a.step == b.step and a.meta == b.meta and set(a.x) == set(b.x) and set(a.carry) == set(b.carry)
    for k in a.x:
        assert a.x[k].dtype == b.x[k].dtype and np.array_equal(a.x[k], b.x[k]), k
    for k in a.carry:
        assert torch.equal(a.carry[k], b.carry[k]), k


def test_init_state_batch_is_init_state_per_session() -> None:
    p = HRMReasoner()
    grids = HRMReasoner.held_out_puzzles("sudoku4", 3) + HRMReasoner.held_out_puzzles("sudoku6", 2)
    ctxs = [{"seed": i, "mode": ("bare", "irp")[i % 2]} for i in range(len(grids))]
    batch = p.init_state_batch(grids, ctxs)
    assert len(batch) == len(grids)
    for g, c, got in zip(grids, ctxs, batch):
        _states_equal(got, p.init_state(g, c))
    assert p.energy_batch(batch) == [p.energy(p.init_state(g, c)) for g, c in zip(grids, ctxs)]


def test_init_state_batch_names_the_bad_puzzle() -> None:
    p = HRMReasoner()
    grids = HRMReasoner.held_out_puzzles("sudoku4", 3)
    grids[2] = [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match=r"puzzle 2: Sudoku has no solution"):
        p.init_state_batch(grids, [{}] * 3)
    with pytest.raises(ValueError, match="3 puzzles and 2 contexts"):
        p.init_state_batch(grids, [{}] * 2)


def test_project_batch_is_project_per_state() -> None:
    p = HRMReasoner()
    grids = HRMReasoner.held_out_puzzles("sudoku4", 4)
    states = p.step_batch(p.init_state_batch(grids, [{"seed": i} for i in range(4)]))
    rng = np.random.default_rng(0)
    broken = []  # answers that overwrite givens, in two of the four states
    for i, s in enumerate(states):
        if i % 2:
            x = {**s.x, "answer": rng.integers(0, 4, s.x["answer"].shape), "best": rng.integers(0, 4, s.x["best"].shape)}
            s = s.evolve(x=x)
        broken.append(s)
    projected = p.project_batch(broken)
    for s, got in zip(broken, projected):
        want = p.project(s)
        _states_equal(got, want)
        given = s.x["puzzle"] > 0
        assert np.array_equal(got.x["best"][given], s.x["puzzle"][given] - 1)
    assert projected[0] is broken[0] and projected[2] is broken[2]  # already projected: returned as is
    assert projected[1] is not broken[1]


def test_stepped_sessions_own_their_carry() -> None:
    """A session's carry after a batched step is its own tensor, not a view of the batch carry
    (which a kept result would otherwise hold alive whole)."""
    p = HRMReasoner()
    states = p.init_state_batch(HRMReasoner.held_out_puzzles("sudoku4", 5), [{"seed": i} for i in range(5)])
    for s in p.step_batch(states):
        for t in s.carry.values():
            assert t.shape[0] == 1 and t.untyped_storage().nbytes() == t.numel() * t.element_size()


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_small_calls_run_on_one_thread_and_leave_the_setting_as_it_was(two_threads) -> None:
    import threading

    from plugins.hrm.inference import PARALLEL_MIN_TOKENS, threads_for

    with threads_for(PARALLEL_MIN_TOKENS - 1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with threads_for(PARALLEL_MIN_TOKENS):
        assert torch.get_num_threads() == 2
    # overlapping small calls from two threads: one thread while either is inside, then 2 again
    inside, leave = threading.Barrier(2), threading.Event()
    seen = []

    def small() -> None:
        with threads_for(1):
            inside.wait(5)
            leave.wait(5)
            seen.append(torch.get_num_threads())

    workers = [threading.Thread(target=small) for _ in range(2)]
    for w in workers:
        w.start()
    leave.set()
    for w in workers:
        w.join(10)
    assert seen == [1, 1] and torch.get_num_threads() == 2


def test_a_batch_1_step_is_on_one_thread_and_a_large_batch_on_all(two_threads, monkeypatch) -> None:
    plugin = HRMReasoner(checkpoint="sudoku4")
    puzzles = HRMReasoner.held_out_puzzles("sudoku4", 16)
    plugin.step(plugin.init_state(puzzles[0], {}))  # builds (and checks) the forward first
    threads: list[int] = []
    real = FastSegment._segment

    def spy(self, carry, inputs):
        threads.append(torch.get_num_threads())
        return real(self, carry, inputs)

    monkeypatch.setattr(FastSegment, "_segment", spy)
    one = plugin.step(plugin.init_state(puzzles[0], {}))
    many = plugin.step_batch([plugin.init_state(p, {}) for p in puzzles])  # 16 x 17 tokens
    assert threads == [1, 2] and torch.get_num_threads() == 2
    torch.testing.assert_close(one.carry["z_H"], many[0].carry["z_H"], atol=1e-4, rtol=1e-4)
