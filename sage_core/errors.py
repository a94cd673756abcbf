"""Exception types raised by sage_core, one per kind of failure a caller may handle."""

from __future__ import annotations


class SageError(Exception):
    """Base class of every error sage-irp raises on purpose."""


class PluginContractError(SageError, TypeError):
    """A plugin class does not satisfy the IRP contract (missing method, bad signature, ...)."""


class PluginLoadError(SageError):
    """An entry point could not be loaded or registered (raised only in strict mode)."""


class UnknownPluginError(SageError, KeyError):
    """A plugin, bridge or backend name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class StateCodecError(SageError, ValueError):
    """A plugin state holds a value the state codec cannot export, or an export is malformed."""
