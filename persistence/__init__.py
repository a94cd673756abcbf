"""persistence: sessions that survive the process.

A :class:`SessionStore` keeps each reasoning session as a directory of checkpoints; a
checkpoint is one msgpack manifest (schema version, plugins, step counters, meta,
orchestrator state, RNG states, checksums) plus one safetensors file per plugin state. Writes
are atomic and locked, loads verified and memory-mapped, nothing is pickled. See
``docs/persistence.md``.
"""

from ._errors import (
    SessionCorruptError,
    SessionError,
    SessionExistsError,
    SessionLockedError,
    SessionNotFoundError,
    SessionVersionError,
    SnapshotError,
)
from ._lazy import LazyTensors
from ._fsutil import FileLock, write_atomic
from ._manifest import SCHEMA
from ._rng import capture_rng_state, restore_rng_state
from ._snapshot import CheckpointInfo, NodeInfo, PluginSnapshot, SessionInfo, SessionSnapshot
from ._store import CheckpointSkippedWarning, SessionStore, default_root

__all__ = [
    "SCHEMA", "CheckpointInfo", "CheckpointSkippedWarning", "FileLock", "LazyTensors", "NodeInfo", "PluginSnapshot",
    "SessionCorruptError", "SessionError", "SessionExistsError", "SessionInfo", "SessionLockedError",
    "SessionNotFoundError", "SessionSnapshot", "SessionStore", "SessionVersionError", "SnapshotError",
    "capture_rng_state", "default_root", "restore_rng_state", "write_atomic",
]
