"""Durable file-system primitives: fsync of files and directories, atomic renames."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: list[Path]) -> None:
    """fsync files and directories, concurrently: the file system can merge them into one
    journal commit instead of one flush after the other."""
    def sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    if len(paths) <= 1:
        for path in paths:
            sync(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(paths)), thread_name_prefix="sage-fsync") as pool:
        for future in [pool.submit(sync, path) for path in paths]:
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
