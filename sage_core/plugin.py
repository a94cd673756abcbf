"""The IRP contract: the IRPPlugin base class, its Protocol, and the contract validator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from .codec import decode_tree, encode_tree
from .errors import PluginContractError, StateCodecError
from .halting import HaltDecision
from .history import EnergyHistory
from .state import IRPState

#: The IRP API version this host implements; plugins declare the one they were written for.
API_VERSION = 1
#: Oldest and newest plugin ``api_version`` this host accepts (inclusive).
SUPPORTED_API_VERSIONS = (1, 1)

#: Version of the layout that the default export_state writes into ``meta``.
EXPORT_FORMAT = 1


@runtime_checkable
class IRPPluginProtocol(Protocol):
    """Structural type of an IRP plugin: what the orchestrator and persistence rely on."""

    name: str
    version: str
    api_version: int

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState: ...

    def energy(self, state: IRPState) -> float: ...

    def step(self, state: IRPState, budget: float | None = None) -> IRPState: ...

    def project(self, state: IRPState) -> IRPState: ...

    def halt(self, history: EnergyHistory) -> HaltDecision | None: ...

    def step_cost(self, state: IRPState) -> float: ...

    def export_state(self, state: IRPState) -> tuple[dict[str, Any], dict[str, Any]]: ...

    def import_state(self, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> IRPState: ...


class IRPPlugin:
    """Base class for IRP plugins: subclass, set ``name``/``version``, implement three methods.

    Required: :meth:`init_state`, :meth:`energy`, :meth:`step`. Defaults: :meth:`project`
    (identity), :meth:`halt` and :meth:`halt_state` (no opinion: the run's policies
    decide), :meth:`step_cost`
    (1 ATP), :meth:`export_state` / :meth:`import_state` (any state whose ``x``/``carry``
    hold tensors, arrays, plain values and dict/list/tuple of them). A step's randomness
    should derive from the state (see :func:`sage_core.rng.step_generator`) so that a
    resumed run is identical to an uninterrupted one.

    Kinds (DESIGN.md section 8: ``"image"``, ``"sudoku_grid"``, ``"solved_puzzle"``, ...) let
    pipelines be checked when built: ``input_kind`` (a kind, or a tuple of the kinds ``x0`` may
    be), ``output_kind`` (what bridges read from the node) and ``context_kinds`` (context key
    -> kind). ``None`` leaves a side undeclared (it matches any bridge). Optional
    ``receive(state, key, value) -> IRPState`` takes a value streamed in while the node runs
    (streaming and feedback edges); optional ``output(state)`` gives the value of
    ``output_kind`` when ``state.x`` is not already it (bridges then read it as ``state.x``).

    Optional batch methods, for hosts that serve many sessions at once (the orchestrator's
    ``BatchPool`` and ``run_sessions``): ``init_state_batch(x0s, ctxs)``, ``step_batch(states)``,
    ``project_batch(states)`` and ``energy_batch(states)``, each equal to the single-session
    method applied to every item (up to the float rounding of batched arithmetic).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    api_version: ClassVar[int] = API_VERSION
    input_kind: ClassVar[str | tuple[str, ...] | None] = None
    output_kind: ClassVar[str | None] = None
    context_kinds: ClassVar[Mapping[str, str]] = {}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        """Build the initial state from an input ``x0`` and a context (``seed``, upstream outputs)."""
        raise NotImplementedError(f"{type(self).__qualname__}.init_state")

    def energy(self, state: IRPState) -> float:
        """Lower is better; must be finite for a healthy state."""
        raise NotImplementedError(f"{type(self).__qualname__}.energy")

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        """Return the next state; never mutate ``state``. ``budget`` is the ATP left, if known."""
        raise NotImplementedError(f"{type(self).__qualname__}.step")

    def project(self, state: IRPState) -> IRPState:
        """Enforce hard constraints on a state; identity by default."""
        return state

    def halt(self, history: EnergyHistory) -> HaltDecision | None:
        """The plugin's own halting opinion from the energies; ``None`` leaves it to the run's policy."""
        return None

    def halt_state(self, state: IRPState) -> HaltDecision | None:
        """The plugin's own halting opinion from the state a step just produced (an ACT halt
        flag, a verified answer). Hosts call it after every step where the state lives (in a
        Ray actor for the Ray backend), so it works when the state never reaches the driver."""
        return None

    def step_cost(self, state: IRPState) -> float:
        """ATP the next step of ``state`` costs; 1 by default."""
        return 1.0

    def export_state(self, state: IRPState) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split ``state`` into (tensors, msgpack-able meta) for persistence; bit-exact."""
        tensors, skeleton = encode_tree({"x": state.x, "carry": state.carry})
        meta = {
            "format": EXPORT_FORMAT,
            "step": state.step,
            "energy": state.energy,
            "meta": state.meta,
            "tree": skeleton,
        }
        return tensors, meta

    def import_state(self, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> IRPState:
        """Inverse of :meth:`export_state`."""
        if meta.get("format") != EXPORT_FORMAT:
            raise StateCodecError(
                f"{self.name}: exported state has format {meta.get('format')!r}, expected {EXPORT_FORMAT}"
            )
        tree = decode_tree(dict(tensors), meta["tree"])
        if not isinstance(tree, dict) or set(tree) != {"x", "carry"}:
            raise StateCodecError(f"{self.name}: exported state tree must hold exactly 'x' and 'carry'")
        return IRPState(x=tree["x"], step=int(meta["step"]), energy=meta["energy"], meta=dict(meta["meta"]), carry=tree["carry"])

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self.name!r} v{self.version}>"


#: Methods every plugin has, with the positional parameters (after self) each must accept.
_REQUIRED_METHODS: dict[str, int] = {"init_state": 2, "energy": 1, "step": 1}
_OPTIONAL_METHODS: dict[str, int] = {
    "project": 1,
    "halt": 1,
    "halt_state": 1,
    "step_cost": 1,
    "export_state": 1,
    "import_state": 2,
    "step_batch": 1,
    "energy_batch": 1,
    "project_batch": 1,
    "init_state_batch": 2,
    "receive": 3,
    "output": 1,
}


def state_halt_of(plugin: Any) -> Callable[[IRPState], HaltDecision | None] | None:
    """``plugin.halt_state`` if the plugin has its own, else ``None`` (hosts skip the call)."""
    fn = getattr(type(plugin), "halt_state", None)
    if fn is None or fn is IRPPlugin.halt_state:
        return None
    return plugin.halt_state


def validate_plugin_class(cls: Any) -> None:
    """Check that ``cls`` can serve as an IRP plugin factory; raise PluginContractError if not.

    Checks the ``name``/``version``/``api_version`` attributes, that the API version is one
    this host supports, and that each contract method exists, is callable and accepts the
    positional arguments the orchestrator passes.
    """
    label = getattr(cls, "__qualname__", repr(cls))
    if not callable(cls):
        raise PluginContractError(f"{label}: a plugin must be a class or factory, got {type(cls).__name__}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginContractError(
            f"{label}: class attribute 'name' must be an identifier-like str (e.g. 'hrm'), got {name!r}"
        )
    if not isinstance(getattr(cls, "version", None), str):
        raise PluginContractError(f"{label}: class attribute 'version' must be a str such as '1.0.0'")
    api = getattr(cls, "api_version", None)
    low, high = SUPPORTED_API_VERSIONS
    if not isinstance(api, int) or isinstance(api, bool):
        raise PluginContractError(f"{label}: class attribute 'api_version' must be an int, got {api!r}")
    if not low <= api <= high:
        raise PluginContractError(
            f"plugin {name!r} declares api_version {api}; this sage-irp supports "
            f"{low}..{high}: install a release of the plugin written for API {high}"
            + (" or upgrade sage-irp" if api > high else "")
        )
    _check_kinds(name, cls)
    for method, arity in {**_REQUIRED_METHODS, **_OPTIONAL_METHODS}.items():
        fn = getattr(cls, method, None)
        if fn is None:
            if method in _REQUIRED_METHODS:
                raise PluginContractError(f"plugin {name!r}: missing required method {method}()")
            continue
        if not callable(fn):
            raise PluginContractError(f"plugin {name!r}: {method} is not callable")
        if method in _REQUIRED_METHODS and getattr(IRPPlugin, method, None) is fn:
            raise PluginContractError(f"plugin {name!r}: required method {method}() is not implemented")
        _check_arity(name, method, fn, arity)


def _check_kinds(name: str, cls: Any) -> None:
    """Declared kinds must be strings (``input_kind`` may be a tuple of them), ``context_kinds`` a dict."""
    def is_kind(value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    accepted = getattr(cls, "input_kind", None)
    if accepted is not None and not (is_kind(accepted) or (isinstance(accepted, tuple) and accepted
                                                           and all(map(is_kind, accepted)))):
        raise PluginContractError(f"plugin {name!r}: input_kind must be a kind name, a tuple of them or None, "
                                  f"got {accepted!r}")
    produced = getattr(cls, "output_kind", None)
    if produced is not None and not is_kind(produced):
        raise PluginContractError(f"plugin {name!r}: output_kind must be a kind name or None, got {produced!r}")
    context = getattr(cls, "context_kinds", None) or {}
    if not isinstance(context, Mapping) or not all(is_kind(k) and is_kind(v) for k, v in context.items()):
        raise PluginContractError(f"plugin {name!r}: context_kinds must map context keys to kind names, "
                                  f"got {context!r}")


def _check_arity(name: str, method: str, fn: Any, arity: int) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without introspection: trust them
    params = list(signature.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    required = [p for p in positional if p.default is p.empty]
    if len(required) > arity or (len(positional) < arity and not has_varargs):
        raise PluginContractError(
            f"plugin {name!r}: {method}{signature} must accept {arity} positional argument(s)"
        )

