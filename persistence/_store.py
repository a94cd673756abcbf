"""SessionStore: sessions as directories of checkpoints (safetensors + msgpack manifest).

Layout of a store root::

    ROOT/<session id>/session.msgpack            created by create(): id, created time
    ROOT/<session id>/.lock                      writer lock (flock)
    ROOT/<session id>/ckpt-00000007/manifest.msgpack
    ROOT/<session id>/ckpt-00000007/n000.safetensors   one file per node (plugin state)

A checkpoint is written into ``.tmp-ckpt-...`` (tensor files first, then the manifest; every
file and the directory fsynced, concurrently), renamed to ``ckpt-N`` in one atomic step, and
the session directory is fsynced. A crash at any instant leaves either the old or the new
checkpoint as the newest complete one; leftovers are swept by the next writer.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import stat
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import msgpack
import safetensors
import torch

from . import _manifest
from ._errors import (
    SessionCorruptError,
    SessionExistsError,
    SessionLockedError,
    SessionNotFoundError,
    SessionVersionError,
    SnapshotError,
)
from ._format import (
    CHECKSUMS,
    DEFAULT_CHECKSUM,
    checksum_function,
    file_identity,
    prepare_tensor,
    write_all,
    write_tensor_file,
)
from ._fsutil import FileLock, SyncBatch, being_removed, fsync_dir, remove_later, token, write_atomic
from ._lazy import LazyTensors
from ._rng import check_rng_state
from ._snapshot import CheckpointInfo, NodeInfo, PluginSnapshot, SessionInfo, SessionSnapshot

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_LEFTOVER = (".tmp-", ".del-")
SESSIONS_ENV = "SAGE_HOME"


def default_root() -> Path:
    """``$SAGE_HOME/sessions`` if ``SAGE_HOME`` is set, else ``./.sage/sessions``."""
    home = os.environ.get(SESSIONS_ENV)
    return Path(home).expanduser() / "sessions" if home else Path.cwd() / ".sage" / "sessions"


def _new_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{token()[:6]}"


class CheckpointSkippedWarning(RuntimeWarning):
    """``load`` skipped an unreadable newest checkpoint and loaded an older one."""


class SessionStore:
    """Create, checkpoint, load, list and delete sessions under ``root``.

    ``keep`` is how many checkpoints each session retains (oldest removed first);
    ``checksum`` the checksum of the tensors and the manifest (``xxh3_128``, the default when
    the ``xxhash`` package is installed, else ``crc32``; or ``sha256``, ``blake2b``);
    ``lock_timeout`` how long a writer waits for another writer's lock before
    :class:`SessionLockedError` (0: fail at once); ``max_manifest_bytes`` caps manifests read.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, keep: int = 3, *, checksum: str | None = None,
                 lock_timeout: float = 0.0, max_manifest_bytes: int = _manifest.MAX_MANIFEST_BYTES) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        checksum = DEFAULT_CHECKSUM if checksum is None else checksum
        if checksum not in CHECKSUMS:
            raise ValueError(f"checksum must be one of {sorted(CHECKSUMS)}, got {checksum!r}"
                             + (" (xxh3_128 needs the xxhash package)" if checksum == "xxh3_128" else ""))
        self.root = Path(root) if root is not None else default_root()
        self.keep = keep
        self.checksum = checksum
        self.lock_timeout = lock_timeout
        self.max_manifest_bytes = max_manifest_bytes
        self._locks: dict[str, FileLock] = {}
        self._created_cache: dict[str, tuple[tuple[Any, ...], float]] = {}

    def __repr__(self) -> str:
        return f"SessionStore({str(self.root)!r}, keep={self.keep})"

    # -- paths ------------------------------------------------------------------------------------
    def path(self, session_id: str) -> Path:
        """The directory of ``session_id`` (validated: no path separators, no leading dot)."""
        return self.root / self._check_id(session_id)

    @staticmethod
    def _check_id(session_id: str) -> str:
        if not isinstance(session_id, str) or not _ID.fullmatch(session_id):
            raise SessionNotFoundError(f"invalid session id {session_id!r:.80}: use 1-128 letters, digits, "
                                       "'.', '_' or '-', starting with a letter or digit")
        return session_id

    def _existing(self, session_id: str) -> Path:
        path = self.path(session_id)
        if not path.is_dir():
            raise SessionNotFoundError(f"no session {session_id!r} in {self.root}")
        return path

    def __contains__(self, session_id: object) -> bool:
        return isinstance(session_id, str) and bool(_ID.fullmatch(session_id)) and (self.root / session_id).is_dir()

    @staticmethod
    def _numbers(path: str | Path, names: list[str] | None = None) -> list[int]:
        if names is None:
            try:
                names = os.listdir(path)
            except FileNotFoundError:
                return []
        # ckpt-(\d{8,12}), spelled out: this runs on every load
        return sorted([int(name[5:]) for name in names
                       if name.startswith("ckpt-") and 13 <= len(name) <= 17 and name[5:].isdecimal()])

    def checkpoints(self, session_id: str) -> list[int]:
        """Numbers of the session's checkpoints, oldest first."""
        return self._numbers(self._existing(session_id))

    # -- locking ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, session_id: str) -> Iterator[None]:
        """Hold the session's writer lock (re-entrant in this thread) for a block of writes.

        A second process or thread that tries to write meanwhile gets :class:`SessionLockedError`.
        """
        path = self._existing(session_id)
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = FileLock(str(path / ".lock"))
        with lock.held(self.lock_timeout, lambda: SessionLockedError(
                f"session {session_id!r} is being written by another process or thread "
                f"(lock {path / '.lock'} held); wait for it or stop it")):
            yield

    # -- create / delete --------------------------------------------------------------------------
    def create(self, session_id: str | None = None) -> str:
        """Create an empty session; returns its id (a new one if ``session_id`` is None)."""
        session_id = session_id if session_id is not None else _new_id()
        path = self.path(session_id)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise SessionExistsError(f"session {session_id!r} already exists in {self.root}") from None
        record = {"format": _manifest.FORMAT, "schema": _manifest.SCHEMA, "id": session_id, "created": time.time()}
        write_atomic(path / _manifest.SESSION_FILE, msgpack.packb(record, use_bin_type=True))
        fsync_dir(self.root)
        return session_id

    def delete(self, session_id: str) -> None:
        """Remove a session and all its checkpoints (refused while a writer holds its lock)."""
        path = self._existing(session_id)
        trash = self.root / f".del-{session_id}-{token()}"
        with self.lock(session_id):
            os.rename(path, trash)
        self._locks.pop(session_id, None)
        fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    # -- checkpoint -------------------------------------------------------------------------------
    def checkpoint(self, session_id: str, snapshot: SessionSnapshot) -> int:
        """Write ``snapshot`` as the session's next checkpoint, atomically; returns its number.

        Keeps the newest ``keep`` checkpoints. Raises :class:`SnapshotError` (nothing written)
        for a snapshot that cannot be stored, :class:`SessionLockedError` if another writer
        is busy, :class:`SessionNotFoundError` for an unknown session.
        """
        path = self._existing(session_id)
        nodes = self._prepare(snapshot)
        with self.lock(session_id):
            names = os.listdir(path)
            self._sweep(path, names)
            numbers = self._numbers(path, names)
            number = (numbers[-1] if numbers else 0) + 1
            tmp = path / f".tmp-ckpt-{number:08d}-{token()}"
            os.mkdir(tmp)
            try:
                # Every file and the directory durable before the rename that publishes them.
                # Each file's fsync starts as soon as it is written (overlapping the checksums
                # and the manifest) and they run concurrently, so the file system can merge
                # them into one journal commit.
                with SyncBatch() as syncs:
                    body = self._write_files(tmp, session_id, number, nodes, snapshot, syncs.add)
                    fd = os.open(tmp / _manifest.FILE_NAME, _O_CREATE, 0o666)
                    try:
                        write_all(fd, [_manifest.dump(body, self.checksum)])
                    except BaseException:
                        os.close(fd)
                        raise
                    syncs.add(fd)
                    fsync_dir(tmp)  # here, while the pool flushes the files
                os.rename(tmp, path / f"ckpt-{number:08d}")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            fsync_dir(path)
            doomed = self._prune(path, [*numbers, number])
        remove_later(doomed)  # after the lock is released: the caller goes on while it runs
        return number

    def _prepare(self, snapshot: SessionSnapshot) -> list[tuple[str, PluginSnapshot, list[Any]]]:
        """Validate the whole snapshot before writing anything."""
        if not isinstance(snapshot, SessionSnapshot):
            raise SnapshotError(f"checkpoint needs a persistence.SessionSnapshot, got {type(snapshot).__name__}")
        snapshot_error = SnapshotError
        _manifest.check_plain(dict(snapshot.orchestrator), "orchestrator", snapshot_error, allow_tuple=True)
        _manifest.check_plain(dict(snapshot.rng), "rng", snapshot_error, allow_tuple=True)
        try:
            check_rng_state(_manifest.unpack_limited(Path("rng"), _manifest.pack(dict(snapshot.rng), "rng")), "rng")
        except SessionCorruptError as exc:
            raise SnapshotError(f"rng: {exc.reason} (use persistence.capture_rng_state())") from None
        prepared = []
        for name, node in snapshot.nodes.items():
            if not isinstance(name, str) or not name:
                raise SnapshotError(f"node names must be non-empty strings, got {name!r:.40}")
            if not isinstance(node, PluginSnapshot):
                raise SnapshotError(f"node {name!r}: expected a PluginSnapshot, got {type(node).__name__}")
            _manifest.check_plain(dict(node.meta), f"node {name!r} meta", snapshot_error, allow_tuple=True)
            items = []
            for key, value in node.tensors.items():
                if not isinstance(key, str) or not key:
                    raise SnapshotError(f"node {name!r}: tensor names must be non-empty strings, got {key!r:.40}")
                tensor, code = prepare_tensor(value, f"node {name!r} tensor {key!r}")
                items.append((key, f"{name}/{key}", tensor, code))
            prepared.append((name, node, items))
        return prepared

    def _write_files(self, tmp: Path, session_id: str, number: int, nodes: list[tuple[str, PluginSnapshot, list[Any]]],
                     snapshot: SessionSnapshot, sync: Any) -> dict[str, Any]:
        created = self._created(tmp.parent)
        entries = []
        for index, (name, node, items) in enumerate(nodes):
            file_name = f"n{index:03d}.safetensors"
            metadata = {"format": "pt", "sage.session": session_id, "sage.node": name, "sage.plugin": node.plugin}
            size, header_digest, written = write_tensor_file(tmp / file_name, items, metadata, self.checksum, sync)
            meta = dict(node.meta)
            step, energy = meta.get("step"), meta.get("energy")
            entries.append({
                "name": name, "plugin": node.plugin, "version": node.version, "api_version": int(node.api_version),
                "step": step if type(step) is int else None,
                "energy": float(energy) if isinstance(energy, (int, float)) and not isinstance(energy, bool) else None,
                "meta": meta, "file": file_name, "bytes": size, "header": header_digest,
                "tensors": [[it.key, it.code, it.shape, it.start, it.start + it.nbytes, it.digest] for it in written],
            })
        return {
            "session": session_id, "checkpoint": number, "created": created, "written": time.time(),
            "writer": {"sage_irp": _version(), "python": platform.python_version(), "torch": torch.__version__,
                       "safetensors": safetensors.__version__},
            "checksum": self.checksum, "nodes": entries, "orchestrator": dict(snapshot.orchestrator),
            "rng": dict(snapshot.rng),
        }

    def _created(self, path: Path) -> float:
        """The session's creation time, from its record (read again only when the record changed)."""
        record = path / _manifest.SESSION_FILE
        try:
            info = os.stat(record)
            key = (str(record), info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns)
        except OSError:
            key = None
        if key is not None and self._created_cache.get(key[0], (None,))[0] == key:
            return self._created_cache[key[0]][1]
        try:
            data = _manifest.unpack_limited(record, _manifest.read_limited(record, 1 << 16))
            created = float(_manifest.validate_session_file(record, data)["created"])
        except SessionCorruptError:
            return float(path.stat().st_mtime)
        if key is not None:
            self._created_cache[key[0]] = (key, created)
        return created

    @staticmethod
    def _sweep(path: Path, names: list[str]) -> None:
        """Remove what a crashed writer left behind (called with the lock held)."""
        for name in names:
            if name.startswith(_LEFTOVER):
                target = path / name
                if being_removed(target):  # this process is already removing it
                    continue
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)

    def _prune(self, path: Path, numbers: list[int]) -> list[Path]:
        """Rename the checkpoints beyond ``keep`` out of sight; returns them, for the caller to
        remove in the background (removing a large file takes long). No fsync: if a crash
        forgets these renames, the old checkpoints are pruned next time; if it interrupts the
        removal, the next sweep finishes it."""
        old = sorted(numbers)[:-self.keep]
        doomed = []
        for number in old:
            target = path / f".del-ckpt-{number:08d}-{token()}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(path / f"ckpt-{number:08d}", target)
                doomed.append(target)
        return doomed

    # -- load ---------------------------------------------------------------------------------------
    def load(self, session_id: str, checkpoint: int | None = None, *,
             verify: Literal["lazy", "full"] = "lazy", fallback: bool = True) -> SessionSnapshot:
        """Open a checkpoint (the newest loadable one by default) as a :class:`SessionSnapshot`.

        Opening reads and verifies the manifest and checks that every tensor file is there
        with the recorded size; a node's tensor file is memory-mapped, and its header verified,
        when one of its tensors is first touched, and each tensor is read and checksum-verified
        when first touched (``verify="full"`` verifies everything now). With ``fallback``
        (default) an unreadable newest checkpoint is skipped with a
        :class:`CheckpointSkippedWarning`; a checkpoint from a newer schema is never skipped.
        Bad files raise :class:`SessionCorruptError`.
        """
        if verify not in ("lazy", "full"):
            raise ValueError(f"verify must be 'lazy' or 'full', got {verify!r}")
        path = f"{self.root}{os.sep}{self._check_id(session_id)}"  # strings: this path is hot
        try:
            names = os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            raise SessionNotFoundError(f"no session {session_id!r} in {self.root}") from None
        if checkpoint is not None:
            if type(checkpoint) is not int or checkpoint < 1:
                raise SessionNotFoundError(f"invalid checkpoint number {checkpoint!r}")
            target = f"{path}{os.sep}ckpt-{checkpoint:08d}"
            if not os.path.lexists(target):  # a link is there: _open refuses it by name
                raise SessionNotFoundError(f"session {session_id!r} has no checkpoint {checkpoint} "
                                           f"(it has {self._numbers(path) or 'none'})")
            return self._open(target, checkpoint, verify)
        for attempt in range(3):  # a concurrent writer may prune what we listed
            numbers = self._numbers(path, names if attempt == 0 else None)
            if not numbers:
                raise SessionNotFoundError(f"session {session_id!r} has no checkpoint yet")
            first: SessionCorruptError | None = None
            vanished = False
            for number in reversed(numbers):
                target = f"{path}{os.sep}ckpt-{number:08d}"
                try:
                    snapshot = self._open(target, number, verify)
                except SessionVersionError:
                    raise
                except SessionCorruptError as exc:
                    if not os.path.lexists(target):  # a link (dangling or not) is there: skip it
                        vanished = True
                        break
                    if not fallback:
                        raise
                    first = first or exc
                    continue
                if first is not None:
                    warnings.warn(f"session {session_id!r}: skipped unreadable checkpoint(s) newer than {number}: "
                                  f"{first}", CheckpointSkippedWarning, stacklevel=2)
                return snapshot
            if not vanished:
                assert first is not None
                raise SessionCorruptError(first.path, f"{first.reason} (and no older checkpoint of session "
                                          f"{session_id!r} is loadable)")
        raise SessionNotFoundError(f"session {session_id!r}: checkpoints keep disappearing (concurrent deletion?)")

    def verify(self, session_id: str, checkpoint: int | None = None) -> int:
        """Read and verify every byte of a checkpoint (newest by default); returns its number."""
        numbers = self.checkpoints(session_id)
        number = checkpoint if checkpoint is not None else (numbers[-1] if numbers else None)
        if number is None:
            raise SessionNotFoundError(f"session {session_id!r} has no checkpoint yet")
        self.load(session_id, number, verify="full")
        return number

    def _open(self, target: str, number: int, verify: str) -> SessionSnapshot:
        _refuse_link(target)
        manifest_path = f"{target}{os.sep}{_manifest.FILE_NAME}"
        body = _manifest.load(manifest_path, self.max_manifest_bytes)
        if body["checkpoint"] != number:
            raise SessionCorruptError(manifest_path, f"manifest is of checkpoint {body['checkpoint']}, "
                                      f"found in the directory of checkpoint {number}")
        digest = checksum_function(body["checksum"], manifest_path)
        nodes: dict[str, PluginSnapshot] = {}
        for node in body["nodes"]:
            # Opening checks that each file is there, regular and of the recorded size (so a
            # missing or truncated file makes ``load`` fall back); its header and data are
            # verified against the manifest when first touched (see LazyTensors).
            file_path = f"{target}{os.sep}{node['file']}"  # a validated name: n000.safetensors
            tensors = LazyTensors(file_path, file_identity(file_path, node["bytes"]), digest, node["header"],
                                  node["name"] + "/", node["tensors"])
            if verify == "full":
                tensors.verify()
            nodes[node["name"]] = PluginSnapshot(node["plugin"], node["version"], node["api_version"], tensors,
                                                 node["meta"])
        return SessionSnapshot(nodes, body["orchestrator"], body["rng"])

    # -- info ---------------------------------------------------------------------------------------
    def info(self, session_id: str) -> SessionInfo:
        """Summary of a session from its manifests (no tensor data is read)."""
        path = self._existing(session_id)
        numbers = self._numbers(path)
        latest, problems = None, []
        for number in reversed(numbers):
            target = path / f"ckpt-{number:08d}"
            try:
                _refuse_link(target)
                body = _manifest.load(target / _manifest.FILE_NAME, self.max_manifest_bytes)
                for node in body["nodes"]:
                    size = _file_size(target / node["file"])
                    if size != node["bytes"]:
                        raise SessionCorruptError(target / node["file"], "missing or wrong size")
            except SessionCorruptError as exc:
                problems.append(f"ckpt {number}: {exc}")
                continue
            latest = CheckpointInfo(number, body["written"], _tree_size(target), tuple(
                NodeInfo(n["name"], n["plugin"], n["version"], n["api_version"], n["step"], n["energy"],
                         len(n["tensors"]), n["bytes"]) for n in body["nodes"]))
            break
        created = self._created(path)
        return SessionInfo(session_id, str(path), created, latest.written if latest else created,
                           _tree_size(path), tuple(numbers), latest, tuple(problems))

    def list(self) -> list[SessionInfo]:  # noqa: A003 - the API name
        """Every session under the root, most recently updated first."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        infos = []
        for name in names:
            if _ID.fullmatch(name) and (self.root / name).is_dir():
                with contextlib.suppress(SessionNotFoundError):  # deleted meanwhile
                    infos.append(self.info(name))
        return sorted(infos, key=lambda i: (-i.updated, i.id))


def _refuse_link(target: str | Path) -> None:
    """A checkpoint directory replaced by a symbolic link (dangling, looping or pointing at a
    valid checkpoint elsewhere) is corrupt: a session directory is self-contained and links are
    never followed, so ``load`` skips it like any other unreadable checkpoint."""
    if os.path.islink(target):
        raise SessionCorruptError(target, "checkpoint directory is a symbolic link (links are never followed: "
                                  "a session directory is self-contained)")


def _file_size(path: Path) -> int | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _tree_size(path: Path) -> int:
    """Bytes in the files under ``path``, leaving out a crashed writer's leftovers and pruned
    checkpoints still being removed."""
    total = 0
    for folder, dirs, files in os.walk(path):
        dirs[:] = [name for name in dirs if not name.startswith(_LEFTOVER)]
        for name in files:
            total += _file_size(Path(folder) / name) or 0
    return total


def _version() -> str:
    from sage_core import __version__

    return str(__version__)


__all__ = ["CheckpointSkippedWarning", "SessionStore", "default_root"]
