"""Durable file-system primitives: fsync of files and directories, atomic renames, and a small
thread pool that runs fsyncs concurrently and removes pruned checkpoints in the background."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

# Two pools per process, created on first use: fsyncs (several at once) and removals (one
# at a time, never in the way of fsyncs). Their threads are idle between checkpoints; a
# forked child forgets them (the threads do not exist there) and makes its own.
_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_WORKERS = {"sage-fsync": 8, "sage-remove": 1}
#: Directories being removed in the background: a sweep in this process leaves them alone.
_removing: set[str] = set()
_pending: list[Future[None]] = []


def _executor(name: str = "sage-fsync") -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(name)
            if pool is None:
                pool = _pools[name] = ThreadPoolExecutor(max_workers=_WORKERS[name], thread_name_prefix=name)
    return pool


def _after_fork_in_child() -> None:
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()
    _removing.clear()
    _pending.clear()
    for lock in list(_file_locks):
        lock._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class FileLock:
    """An exclusive lock on a file (``flock``; the kernel releases it if the holder dies),
    re-entrant in the thread that holds it. Any other holder, in this process (another thread,
    another ``FileLock`` of the same file) or in another one, excludes it.

    Lighter than the ``filelock`` package (two system calls to take it, one to release it),
    which matters for small checkpoints.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._guard = threading.Lock()
        self._owner: int | None = None
        self._count = 0
        self._fd = -1
        _file_locks.add(self)

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; returns whether it was taken."""
        me = threading.get_ident()
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._guard:
                if self._owner == me:
                    self._count += 1
                    return True
                if self._owner is None:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _CLOEXEC | _NOFOLLOW, 0o644)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                    except BaseException:
                        os.close(fd)
                        raise
                    else:
                        self._owner, self._count, self._fd = me, 1, fd
                        return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.01, left))

    @contextlib.contextmanager
    def held(self, timeout: float, error: Callable[[], BaseException]) -> Iterator[None]:
        """Hold the lock for a block; raise ``error()`` if it is not free within ``timeout`` seconds."""
        if not self.acquire(timeout=timeout):
            raise error()
        try:
            yield
        finally:
            self.release()

    def release(self) -> None:
        with self._guard:
            if self._owner != threading.get_ident():
                raise RuntimeError(f"{self.path}: released by a thread that does not hold it")
            self._count -= 1
            if self._count == 0:
                fd, self._fd, self._owner = self._fd, -1, None
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)

    def _forget(self) -> None:
        """In a forked child: the parent's lock is not this process's to use or release."""
        if self._fd >= 0:
            try:
                os.close(self._fd)  # the child's copy only: the parent keeps its lock
            except OSError:
                pass
        self._guard, self._owner, self._count, self._fd = threading.Lock(), None, 0, -1


_file_locks: weakref.WeakSet[FileLock] = weakref.WeakSet()
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, _DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SyncBatch:
    """fsyncs started as soon as each file is written and run concurrently, so that the file
    system can merge them into one journal commit and flushing overlaps the caller's work.

    ``add(fd)`` takes ownership of an open descriptor (fsynced, then closed); ``wait()``
    blocks until all are done and raises the first error. Use as a context manager: leaving
    the block waits (an error inside the block wins over the fsync errors).
    """

    def __init__(self) -> None:
        self._futures: list[Future[None]] = []

    def add(self, fd: int) -> None:
        try:
            self._futures.append(_executor().submit(_fsync_and_close, fd))
        except BaseException:
            os.close(fd)
            raise

    def wait(self) -> None:
        futures, self._futures = self._futures, []
        error: BaseException | None = None
        for future in futures:
            try:
                future.result()
            except BaseException as exc:  # noqa: BLE001 - the first one is re-raised below
                error = error or exc
        if error is not None:
            raise error

    def __enter__(self) -> SyncBatch:
        return self

    def __exit__(self, kind: Any, _value: Any, _tb: Any) -> None:
        if kind is None:
            self.wait()
        else:
            try:
                self.wait()
            except BaseException:  # noqa: BLE001 - the error of the block is the one to report
                pass


def remove_later(paths: list[Path]) -> None:
    """Remove directory trees in the background (removing large files takes long: the file
    system frees every block). Used for checkpoints already renamed out of sight; if the
    process dies first, the next writer's sweep removes them."""
    if not paths:
        return
    names = [str(path) for path in paths]
    _removing.update(names)

    def remove() -> None:
        for name in names:
            try:  # a checkpoint directory holds plain files: few steps, so little time holding the GIL
                for entry in os.listdir(name):
                    os.unlink(os.path.join(name, entry))
                os.rmdir(name)
            except OSError:
                shutil.rmtree(name, ignore_errors=True)
            _removing.discard(name)

    try:
        future = _executor("sage-remove").submit(remove)
    except RuntimeError:  # interpreter shutting down: remove now
        remove()
        return
    _pending[:] = [f for f in _pending if not f.done()] + [future]


def being_removed(path: Path) -> bool:
    """Whether this process is removing ``path`` in the background."""
    return str(path) in _removing


def wait_for_removals() -> None:
    """Block until the background removals this process started are done."""
    for future in list(_pending):
        future.result()


def write_file_durable(path: Path, data: bytes) -> None:
    """Create ``path`` (must not exist), write ``data``, flush and fsync it."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: temp file in the same directory, fsync, rename, fsync dir."""
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    try:
        write_file_durable(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def token() -> str:
    """A short random token for temporary names."""
    return secrets.token_hex(4)
