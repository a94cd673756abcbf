"""Crash safety: SIGKILL a process that checkpoints in a loop, hundreds of times.

A fork server (``child.py zygote``, torch already imported) forks a worker per round; the
worker checkpoints numbered snapshots as fast as it can and reports each committed number.
The test kills it at a random moment and then checks that the session loads (no fallback,
every byte verified) and equals bit for bit either the last checkpoint the worker reported
or the one after it (committed but not yet reported). The next worker continues the session.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from persistence import SessionStore

from .helpers import numbered_snapshot, snapshot_fingerprint

ROOT = Path(__file__).resolve().parents[2]


def _kill_loop(tmp_path: Path, kills: int, size: int, max_delay: float, env: dict | None = None) -> dict[str, int]:
    store = SessionStore(tmp_path, keep=2)
    sid = store.create("crash")
    proc = subprocess.Popen([sys.executable, "-m", "tests.persistence.child", "zygote", str(tmp_path), sid, "2",
                             str(size)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                            env={**os.environ, **(env or {})})
    rng = random.Random(1234)
    stats = {"kills": 0, "loaded_previous": 0, "loaded_new": 0, "mid_checkpoint": 0, "checkpoints": 0}
    committed = store.checkpoint(sid, numbered_snapshot(1, size))  # newest checkpoint known to be on disk
    expected_cache: dict[int, str] = {}

    def expected(n: int) -> str:
        if n not in expected_cache:
            expected_cache[n] = snapshot_fingerprint(numbered_snapshot(n, size))
        return expected_cache[n]

    try:
        for _ in range(kills):
            proc.stdin.write("go\n")
            first, second = proc.stdout.readline(), proc.stdout.readline()  # "pid P" and "ready", either order
            assert sorted([first[:4], second[:4]]) == ["pid ", "read"], f"zygote said {first!r}, {second!r}"
            pid = int((first if first.startswith("pid ") else second).split()[1])
            time.sleep(rng.uniform(0.0, max_delay))
            os.kill(pid, signal.SIGKILL)
            reported = committed
            while True:
                line = proc.stdout.readline()
                assert line, "zygote died"
                if line.startswith("exit "):
                    break
                assert line.startswith("c "), f"worker said {line!r}"
                reported = int(line.split()[1])
            stats["kills"] += 1
            session_dir = tmp_path / sid
            if any(name.startswith((".tmp-", ".del-")) for name in os.listdir(session_dir)):
                stats["mid_checkpoint"] += 1
            snapshot = store.load(sid, verify="full", fallback=False)
            latest = store.checkpoints(sid)[-1]
            assert latest in (reported, reported + 1), (latest, reported)
            assert snapshot_fingerprint(snapshot) == expected(latest), f"checkpoint {latest} differs from what was written"
            stats["loaded_new" if latest > reported else "loaded_previous"] += 1
            stats["checkpoints"] += latest - committed
            committed = latest
            for n in [n for n in expected_cache if n < committed - 2]:
                del expected_cache[n]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return stats


def _report(stats: dict[str, int]) -> None:
    print(f"\ncrash test: {stats['kills']} SIGKILLs, {stats['checkpoints']} checkpoints committed; "
          f"{stats['mid_checkpoint']} kills left an unfinished checkpoint behind; loaded the newest reported "
          f"checkpoint {stats['loaded_previous']} times, a committed-but-unreported one {stats['loaded_new']} times")


def test_sigkill_during_checkpoints_never_loses_the_session(tmp_path):
    stats = _kill_loop(tmp_path, kills=200, size=32 * 1024, max_delay=0.08)
    _report(stats)
    assert stats["kills"] == 200
    assert stats["checkpoints"] > 0
    assert stats["mid_checkpoint"] > 0, "no kill landed inside a checkpoint: the test proves nothing"


def test_the_crash_test_catches_a_non_atomic_writer(tmp_path):
    """Same loop against a writer that publishes checkpoint files one by one: it must fail."""
    from persistence import SessionCorruptError

    with pytest.raises((AssertionError, SessionCorruptError)):
        _kill_loop(tmp_path, kills=150, size=256 * 1024, max_delay=0.08, env={"SAGE_TEST_NON_ATOMIC": "1"})


@pytest.mark.slow
def test_sigkill_many_more_times_with_bigger_states(tmp_path):
    stats = _kill_loop(tmp_path, kills=1000, size=512 * 1024, max_delay=0.15)
    _report(stats)
    assert stats["mid_checkpoint"] > 0
