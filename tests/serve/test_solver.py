"""The Solver: batching across concurrent requests, progress per step, cancellation, queue limits."""

import asyncio
import time

import pytest

from orchestrator.service import CancelToken, Cancelled, Limits, RequestError, Solver, SolveRequest

from .fakes import Countdown

GRID4 = [[4, 3, 0, 0], [0, 0, 0, 0], [0, 0, 2, 1], [2, 0, 3, 0]]


def countdown(total: int) -> SolveRequest:
    """A countdown request that needs ``total`` steps (a 2x2 grid holds at most 8)."""
    cells = [min(2, max(0, total - 2 * i)) for i in range(4)]
    assert sum(cells) == total
    return SolveRequest([cells[:2], cells[2:]], plugin="countdown")


@pytest.fixture
def solver():
    s = Solver()
    yield s
    s.close()


def test_hrm_answer_is_a_verified_grid(solver):
    res = solver.solve(SolveRequest(GRID4), timeout=120)
    assert res.verified and res.reason == "verified" and res.segments >= 1
    grid = res.answer
    assert all(sorted(row) == [1, 2, 3, 4] for row in grid)
    assert all(sorted(col) == [1, 2, 3, 4] for col in zip(*grid))
    assert all(grid[r][c] == GRID4[r][c] for r in range(4) for c in range(4) if GRID4[r][c])
    assert res.energy < 1 and res.to_dict()["session"] == res.session


def test_hrm_refusal_is_a_422_on_puzzle(solver):
    with pytest.raises(RequestError) as err:
        solver.solve(SolveRequest([[1, 1, 0, 0], [0] * 4, [0] * 4, [0] * 4]), timeout=120)
    assert err.value.status == 422 and err.value.field == "puzzle" and "no solution" in err.value.message


def test_unknown_plugin_is_a_422_on_plugin(solver):
    with pytest.raises(RequestError) as err:
        solver.solve(SolveRequest(GRID4, plugin="nope"), timeout=10)
    assert err.value.field == "plugin" and "nope" in err.value.message


def test_concurrent_requests_share_batched_calls(solver):
    futures = [solver.submit(countdown(5)) for _ in range(32)]
    results = [f.result(10) for f in futures]
    assert all(r.verified and r.segments == 5 and r.answer == 0 for r in results)
    # 32 sessions of 5 steps: far fewer than 160 model calls when stepped together
    assert Countdown.calls["step"] == 0
    assert Countdown.calls["step_batch"] < 32
    assert solver.counts["solved"] == 32


def test_no_batching_makes_one_call_per_session_step():
    s = Solver(batching=False)
    try:
        futures = [s.submit(countdown(3)) for _ in range(8)]
        assert all(f.result(10).segments == 3 for f in futures)
    finally:
        s.close()
    assert Countdown.calls == {"step": 24, "step_batch": 0}


def test_progress_callback_sees_every_step_in_order(solver):
    seen = []
    res = solver.solve(countdown(6), on_step=seen.append, timeout=10)
    assert [e.step for e in seen] == [1, 2, 3, 4, 5, 6]
    assert [e.energy for e in seen] == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert all(e.d_energy == -1.0 and e.session == res.session and e.plugin == "countdown" for e in seen)


def test_a_broken_progress_callback_does_not_break_the_solve(solver):
    def boom(event):
        raise RuntimeError("listener bug")

    assert solver.solve(countdown(4), on_step=boom, timeout=10).verified


@pytest.mark.parametrize("wait_s, rounds", [(0.5, [8]), (0.0, [4, 4])])
def test_a_round_waits_for_the_clients_it_just_answered(monkeypatch, wait_s, rounds):
    s = Solver(batch_wait_s=wait_s)
    try:
        monkeypatch.setattr(Countdown, "delay", 0.02)
        first = s.submit(countdown(8))  # busy for ~0.16 s: the other seven join it, 8 in flight
        assert all(f.result(10).verified for f in [first] + [s.submit(countdown(8)) for _ in range(7)])
        monkeypatch.setattr(Countdown, "delay", 0.0)
        Countdown.batch_sizes.clear()
        early = [s.submit(countdown(1)) for _ in range(4)]
        time.sleep(0.1)  # the other four clients come back later, within the wait
        late = [s.submit(countdown(1)) for _ in range(4)]
        assert all(f.result(10).verified for f in early + late)
        assert Countdown.batch_sizes == rounds  # together only when the round waits for them
    finally:
        s.close()


def test_batch_wait_must_not_be_negative():
    with pytest.raises(ValueError, match="batch_wait_s must be >= 0"):
        Solver(batch_wait_s=-0.001)


def test_cancel_token_stops_a_solve(solver, monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.02)
    token = CancelToken()
    steps = []
    future = solver.submit(countdown(8), cancel=token, on_step=lambda e: (steps.append(e.step), token.cancel()))
    with pytest.raises(Cancelled):
        future.result(10)
    assert steps and steps[-1] < 8
    assert solver.counts["cancelled"] == 1


def test_queue_full_is_a_503_with_retry_after(monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.05)
    s = Solver(limits=Limits(max_queue=2))
    try:
        held = [s.submit(countdown(8)) for _ in range(2)]
        with pytest.raises(RequestError) as err:
            s.submit(countdown(1))
        assert err.value.status == 503 and err.value.retry_after > 0
        for f in held:
            f.result(10)
        assert s.solve(countdown(1), timeout=10).verified  # room again
    finally:
        s.close()


def test_queue_deadline_is_a_503(monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.05)
    s = Solver(max_batch=1, limits=Limits(queue_timeout_s=0.15))
    try:
        first = s.submit(countdown(8))  # holds the only slot for ~0.4 s
        second = s.submit(countdown(1))
        with pytest.raises(RequestError) as err:
            second.result(10)
        assert err.value.status == 503 and "waited" in err.value.message
        assert first.result(10).verified
    finally:
        s.close()


def test_solve_async_and_task_cancellation(solver, monkeypatch):
    async def main():
        assert (await solver.solve_async(countdown(2))).segments == 2
        monkeypatch.setattr(Countdown, "delay", 0.05)
        task = asyncio.ensure_future(solver.solve_async(countdown(8)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if solver.counts["cancelled"]:
                break
            await asyncio.sleep(0.02)

    asyncio.run(main())
    assert solver.counts["cancelled"] == 1 and solver.pending == 0


def test_close_fails_pending_requests_with_503(monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.05)
    s = Solver()
    future = s.submit(countdown(8))
    time.sleep(0.05)
    s.close()
    with pytest.raises(RequestError) as err:
        future.result(1)
    assert err.value.status == 503
    with pytest.raises(RequestError):
        s.submit(countdown(1))


def test_cancelling_the_future_cancels_the_solve(solver, monkeypatch):
    monkeypatch.setattr(Countdown, "delay", 0.02)
    future = solver.submit(countdown(8))
    time.sleep(0.05)
    assert future.cancel()
    deadline = time.monotonic() + 5
    while solver.counts["cancelled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert solver.counts["cancelled"] == 1 and solver.pending == 0
    assert Countdown.calls["step_batch"] < 8
    assert solver.solve(countdown(2), timeout=10).verified  # the worker is unharmed
