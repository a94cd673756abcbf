"""Child processes of the persistence tests: ``python -m tests.persistence.child MODE ...``.

roundtrip ROOT            load every session under ROOT in this fresh process and print a JSON
                          map session id -> fingerprint of the states the toy plugin imports
resume ROOT SID N PLUGIN  load SID, restore the RNG, import the state and run it to step N;
                          print the fingerprint of the final state
zygote ROOT SID KEEP SIZE a fork server for the crash test: for each "go" line on stdin, fork
                          a worker that checkpoints numbered snapshots in a loop, print
                          "pid P", then "exit P" once the worker is dead
"""

from __future__ import annotations

import json
import os
import sys


def roundtrip(root: str) -> None:
    from persistence import SessionStore
    from plugins.toy import QuadraticDescent

    from .helpers import fingerprint

    store = SessionStore(root)
    plugin = QuadraticDescent()
    out = {}
    for info in store.list():
        snapshot = store.load(info.id)
        out[info.id] = fingerprint({name: plugin.import_state(node.tensors, node.meta)
                                    for name, node in snapshot.nodes.items()})
    print(json.dumps(out))


def resume(root: str, sid: str, n: str, plugin_name: str) -> None:
    from persistence import SessionStore, restore_rng_state

    from .helpers import fingerprint, make_plugin

    snapshot = SessionStore(root).load(sid)
    restore_rng_state(snapshot.rng)
    plugin = make_plugin(plugin_name)
    node = snapshot.nodes["main"]
    state = plugin.import_state(node.tensors, node.meta)
    while state.step < int(n):
        state = plugin.step(state, None)
    print(fingerprint(state))


def zygote(root: str, sid: str, keep: str, size: str) -> None:
    import torch

    from persistence import SessionStore

    from .helpers import numbered_snapshot

    torch.set_num_threads(1)
    if os.environ.get("SAGE_TEST_NON_ATOMIC"):
        _break_atomic_commit()
    numbered_snapshot(0)  # warm up everything the worker uses before forking
    for line in sys.stdin:
        if not line.startswith("go"):
            break
        pid = os.fork()
        if pid == 0:  # worker: checkpoint forever, report each committed number
            try:
                store = SessionStore(root, keep=int(keep))
                numbers = store.checkpoints(sid)
                number = numbers[-1] if numbers else 0
                os.write(1, b"ready\n")
                while True:
                    number = store.checkpoint(sid, numbered_snapshot(number + 1, int(size)))
                    os.write(1, f"c {number}\n".encode())
            except BaseException as exc:  # noqa: BLE001 - report and die
                os.write(1, f"error {type(exc).__name__}: {exc}\n".replace("\n", " ").encode() + b"\n")
            finally:
                os._exit(3)
        sys.stdout.write(f"pid {pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"exit {pid} {status}\n")
        sys.stdout.flush()


def _break_atomic_commit() -> None:
    """For the test that shows the crash test can fail: publish a checkpoint file by file."""
    import shutil
    from pathlib import Path

    import persistence._store as store_module

    real_rename = os.rename

    def rename(src, dst):
        src, dst = Path(src), Path(dst)
        if not (src.name.startswith(".tmp-ckpt") and dst.name.startswith("ckpt-")):
            return real_rename(src, dst)
        dst.mkdir()
        for name in sorted(os.listdir(src), reverse=True):  # manifest first, then the tensor files
            shutil.copyfile(src / name, dst / name)
        shutil.rmtree(src)

    store_module.os = type("os_with_broken_rename", (), {**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")},
                                                         "rename": staticmethod(rename)})


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    {"roundtrip": roundtrip, "resume": resume, "zygote": zygote}[mode](*args)
