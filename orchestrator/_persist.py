"""The persistence API the orchestrator uses (one import site)."""

from persistence import (
    FileLock,
    PluginSnapshot,
    SessionExistsError,
    SessionSnapshot,
    SessionStore,
    capture_rng_state,
    restore_rng_state,
    write_atomic,
)

__all__ = ["FileLock", "PluginSnapshot", "SessionExistsError", "SessionSnapshot", "SessionStore",
           "capture_rng_state", "restore_rng_state", "write_atomic"]
