"""RunManager directly: bounded memory for long runs and many runs, the run limit, unknown ids."""

import time

import pytest

from orchestrator.service import Limits, RequestError, RunManager, RunRequest
from orchestrator.service import _runs
from persistence import SessionStore

TOML = """
[nodes.a]
plugin = "slow_toy"
halt = { max_steps = STEPS }
"""


def toml(steps):
    return RunRequest(toml=TOML.replace("STEPS", str(steps)))


def wait_done(runs, run_id, timeout=30):
    deadline = time.monotonic() + timeout
    while runs.status(run_id)["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return runs.status(run_id)


@pytest.fixture
def runs(store_dir):
    manager = RunManager(SessionStore(store_dir))
    yield manager
    manager.shutdown()


def test_a_long_run_keeps_only_recent_events(runs, monkeypatch):
    monkeypatch.setattr(_runs, "MAX_EVENTS", 20)
    run_id = runs.start(toml(60))
    assert wait_done(runs, run_id)["nodes"]["a"]["steps"] == 60
    start, events, stopped = runs.events_from(run_id, 0)
    assert stopped and 0 < start and len(events) <= 20
    assert events[-1]["kind"] == "end" and events[-2]["kind"] == "halt"
    steps = [e["step"] for e in events if e["kind"] == "step"]
    assert steps == list(range(steps[0], 61))  # contiguous up to the last step
    assert start + len(events) == 62  # 60 steps, the halt, the end


def test_old_finished_runs_leave_memory_but_not_the_store(runs, monkeypatch):
    monkeypatch.setattr(_runs, "MAX_FINISHED", 2)
    ids = []
    for _ in range(4):
        ids.append(runs.start(toml(3)))
        wait_done(runs, ids[-1])
    assert [r["id"] for r in runs.list()] == ids[-2:]
    assert runs.status(ids[0])["status"] == "done"  # read back from the store
    assert runs.events(ids[0]) == ([], True)


def test_a_run_is_built_and_started_in_its_own_thread_that_ends_with_it(runs, monkeypatch):
    # torch work in a long-lived thread (the event loop's) would keep an OpenMP team alive and
    # slow the solver's batched forward for good; the run's thread ends with the run
    import threading

    from .fakes import ThreadRecorder

    monkeypatch.setattr(ThreadRecorder, "threads", [])
    run_id = runs.start(RunRequest(toml='[nodes.a]\nplugin = "thread_recorder"\nhalt = { max_steps = 5 }\n'))
    assert wait_done(runs, run_id)["status"] == "done"
    made = set(ThreadRecorder.threads)
    assert len(made) == 1 and threading.current_thread() not in made
    (thread,) = made
    thread.join(10)
    assert not thread.is_alive()


def test_run_limit_is_503(store_dir):
    runs = RunManager(SessionStore(store_dir), limits=Limits(max_runs=1))
    try:
        runs.start(toml(100000))
        with pytest.raises(RequestError) as err:
            runs.start(toml(3))
        assert err.value.status == 503 and err.value.retry_after
    finally:
        assert len(runs.shutdown()) == 1


def test_unknown_ids_are_404(runs):
    for call in (runs.status, runs.cancel, runs.resume, runs.events):
        with pytest.raises(RequestError) as err:
            call("no-such-run")
        assert err.value.status == 404 and err.value.field == "id"
