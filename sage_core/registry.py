"""Discovery and registration of IRP plugins, bridges, backends and sinks through pluggy.

Each entry point of the ``sage`` group is loaded in isolation: one that fails to import,
whose hooks do not match the specs, that registers a duplicate name, or whose plugin class
breaks the IRP contract (including an unsupported ``api_version``) is recorded as a
:class:`LoadFailure` and fully unregistered, and the host keeps working.
``SAGE_STRICT_PLUGINS=1`` turns such failures into :class:`PluginLoadError`;
``SAGE_DISABLE_PLUGINS=a,b`` skips entry points or plugins by name.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginContractError, PluginLoadError, UnknownPluginError
from .plugin import validate_plugin_class
from .tools import validate_tool

ENTRY_POINT_GROUP = "sage"
_KINDS = {
    "sage_register_plugins": "plugin",
    "sage_register_bridges": "bridge",
    "sage_register_backends": "backend",
    "sage_telemetry_sinks": "sink",
    "sage_register_tools": "tool",
}


@attrs.frozen(slots=True)
class Registration:
    """Something a pluggy plugin registered: an IRP plugin class, bridge, backend, sink or tool."""

    kind: str
    name: str
    obj: Any
    source: str
    distribution: str | None
    entry_point: str | None

    @property
    def version(self) -> str | None:
        return getattr(self.obj, "version", None)


@attrs.frozen(slots=True)
class LoadFailure:
    """An entry point or in-process plugin that was skipped, and what to do about it."""

    source: str
    distribution: str | None
    entry_point: str | None
    error: str
    hint: str

    def __str__(self) -> str:
        where = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.source!r}{where} was skipped: {self.error}. {self.hint}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def disabled_names() -> frozenset[str]:
    """Names listed in ``SAGE_DISABLE_PLUGINS`` (comma separated)."""
    raw = os.environ.get("SAGE_DISABLE_PLUGINS", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class Registry:
    """A pluggy PluginManager plus the validated things its plugins registered.

    ``strict`` defaults to ``SAGE_STRICT_PLUGINS``; ``disabled`` to ``SAGE_DISABLE_PLUGINS``.
    """

    def __init__(self, *, strict: bool | None = None, disabled: Iterable[str] | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.strict = _env_flag("SAGE_STRICT_PLUGINS") if strict is None else strict
        self.disabled = disabled_names() if disabled is None else frozenset(disabled)
        self.failures: list[LoadFailure] = []
        self._items: dict[str, dict[str, Registration]] = {kind: {} for kind in _KINDS.values()}
        self._sources: dict[str, tuple[str | None, str | None]] = {}
        self._lock = threading.RLock()

    # -- loading -------------------------------------------------------------------------
    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every entry point of ``group``, each in isolation."""
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            if ep.name in self.disabled or self.pm.has_plugin(ep.name) or ep.name in self._sources:
                continue
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else None
            spec = f"{ep.name} = {ep.value}"
            try:
                module = ep.load()
            except BaseException as exc:  # noqa: BLE001 - a plugin may raise anything on import
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                self._fail(ep.name, dist, spec, f"import failed: {type(exc).__name__}: {exc}",
                           f"fix or uninstall {dist or ep.value}, or set SAGE_DISABLE_PLUGINS={ep.name}")
                continue
            self.add(module, name=ep.name, distribution=dist, entry_point=spec)

    def add(self, module: Any, name: str | None = None, *, distribution: str | None = None,
            entry_point: str | None = None) -> bool:
        """Register a pluggy plugin (module or object with hookimpls) and collect what it registers.

        Returns True on success. On failure nothing of it stays registered; the failure is
        recorded in :attr:`failures` (or raised as PluginLoadError in strict mode).
        """
        with self._lock:
            name = name or getattr(module, "__name__", None) or repr(module)
            if name in self.disabled:
                return False
            hint = (f"fix or uninstall {distribution}, or set SAGE_DISABLE_PLUGINS={name}"
                    if distribution else f"fix the plugin module {name!r}")
            if name in self._sources:
                self._fail(name, distribution, entry_point, f"a plugin named {name!r} is already registered", hint)
                return False
            try:
                self.pm.register(module, name=name)
            except (pluggy.PluginValidationError, ValueError) as exc:
                self._drop(module)
                self._fail(name, distribution, entry_point, f"invalid hooks: {exc}", hint)
                return False
            unknown = [c.name for c in self.pm.get_hookcallers(module) or [] if c.spec is None]
            if unknown:
                self._drop(module)
                self._fail(name, distribution, entry_point,
                           f"implements unknown hook(s) {', '.join(sorted(unknown))}", hint)
                return False
            try:
                staged = self._collect(module, name, distribution, entry_point)
            except Exception as exc:  # noqa: BLE001 - any error inside a plugin's hook
                self._drop(module)
                self._fail(name, distribution, entry_point, str(exc) if isinstance(exc, PluginContractError)
                           else f"{type(exc).__name__}: {exc}", hint)
                return False
            for item in staged:
                self._items[item.kind][item.name] = item
            self._sources[name] = (distribution, entry_point)
            return True

    def remove(self, name: str) -> None:
        """Unregister a pluggy plugin and everything it registered (tests use it in ``finally``)."""
        with self._lock:
            module = self.pm.get_plugin(name)
            if module is not None:
                self._drop(module)
            self._sources.pop(name, None)
            for items in self._items.values():
                for key in [k for k, item in items.items() if item.source == name]:
                    del items[key]

    def _drop(self, module: Any) -> None:
        if self.pm.is_registered(module):
            self.pm.unregister(module)

    def _collect(self, module: Any, source: str, distribution: str | None,
                 entry_point: str | None) -> list[Registration]:
        staged: list[Registration] = []
        for hook_name, kind in _KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not module:
                    continue
                impl.function(register=self._collector(kind, source, distribution, entry_point, staged))
        return staged

    def _collector(self, kind: str, source: str, distribution: str | None, entry_point: str | None,
                   staged: list[Registration]) -> Callable[..., None]:
        def register(obj: Any, name: str | None = None) -> None:
            if kind == "plugin":
                validate_plugin_class(obj)
                if name is not None and name != obj.name:
                    raise PluginContractError(f"register({obj!r}, name={name!r}): plugin name is {obj.name!r}")
                name = obj.name
            elif kind == "tool":
                validate_tool(obj)
                if name is not None and name != obj.name:
                    raise PluginContractError(f"register({obj.name!r} tool, name={name!r}): the tool's name is {obj.name!r}")
                name = obj.name
            else:
                name = name or getattr(obj, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginContractError(f"{kind} {obj!r} has no name: pass register(obj, name='...')")
                if not callable(obj):
                    raise PluginContractError(f"{kind} {name!r} must be callable")
            if name in self.disabled:
                return
            existing = self._items[kind].get(name) or next(
                (item for item in staged if item.kind == kind and item.name == name), None)
            if existing is not None:
                where = existing.distribution or existing.source
                raise PluginContractError(f"{kind} name {name!r} is already registered by {where!r}")
            staged.append(Registration(kind, name, obj, source, distribution, entry_point))
        return register

    def _fail(self, source: str, distribution: str | None, entry_point: str | None, error: str, hint: str) -> None:
        failure = LoadFailure(source, distribution, entry_point, error, hint)
        if self.strict:
            raise PluginLoadError(str(failure) + " (SAGE_STRICT_PLUGINS is set)")
        self.failures.append(failure)
        print(f"sage: warning: {failure}", file=sys.stderr)

    # -- lookup --------------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        """The pluggy hook relay (observer hooks, ``sage_register_commands``)."""
        return self.pm.hook

    def sources(self) -> dict[str, tuple[str | None, str | None]]:
        """Registered pluggy plugin names -> (distribution, entry point)."""
        return dict(self._sources)

    def hooks_of(self, source: str) -> list[str]:
        """Names of the hooks the pluggy plugin ``source`` implements."""
        module = self.pm.get_plugin(source)
        if module is None:
            return []
        return sorted(caller.name for caller in self.pm.get_hookcallers(module) or [])

    def items(self, kind: str) -> dict[str, Registration]:
        """All registrations of ``kind`` ('plugin', 'bridge', 'backend', 'sink', 'tool') by name."""
        return dict(self._items[kind])

    @property
    def plugins(self) -> dict[str, Registration]:
        return self.items("plugin")

    def get(self, kind: str, name: str) -> Any:
        """The registered object of ``kind`` called ``name``; UnknownPluginError names the options."""
        item = self._items[kind].get(name)
        if item is None:
            known = ", ".join(sorted(self._items[kind])) or "none"
            failed = [f.source for f in self.failures]
            extra = f"; failed to load: {', '.join(failed)}" if failed else ""
            raise UnknownPluginError(f"unknown {kind} {name!r}; registered: {known}{extra}")
        return item.obj

    def plugin_class(self, name: str) -> Any:
        """The IRP plugin class (factory) registered as ``name``."""
        return self.get("plugin", name)

    def create(self, name: str, **config: Any) -> Any:
        """Instantiate the IRP plugin ``name`` with ``config``."""
        return self.plugin_class(name)(**config)


_default: Registry | None = None
_default_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    with _default_lock:
        if _default is None:
            registry = Registry()
            registry.load_entrypoints()
            _default = registry
        return _default


def reset_registry() -> None:
    """Forget the process-wide registry (the next get_registry() reloads entry points)."""
    global _default
    with _default_lock:
        _default = None
