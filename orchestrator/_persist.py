"""The persistence API the orchestrator uses (one import site)."""

from persistence import (
    PluginSnapshot,
    SessionExistsError,
    SessionSnapshot,
    SessionStore,
    capture_rng_state,
    restore_rng_state,
)

__all__ = ["PluginSnapshot", "SessionExistsError", "SessionSnapshot", "SessionStore", "capture_rng_state",
           "restore_rng_state"]
