"""sage_core: the IRP contract, halting, trust, telemetry, hookspecs and plugin registry.

Depends on no other sage-irp package: the orchestrator, persistence, bridges and built-in
plugins contribute through the hooks in :mod:`sage_core.hookspecs` like any third party.
"""

from importlib.metadata import PackageNotFoundError, version as _dist_version

from .codec import decode_tree, encode_tree
from .errors import (
    PluginContractError,
    PluginLoadError,
    SageError,
    StateCodecError,
    UnknownPluginError,
)
from .halting import (
    AnyOf,
    BudgetExhausted,
    Diverging,
    HaltDecision,
    HaltPolicy,
    MaxSteps,
    NonFinite,
    Plateau,
    Threshold,
    any_of,
    check_of,
    default_policy,
)
from .history import EnergyHistory
from .hookspecs import hookimpl, hookspec
from .loop import RefineResult, refine
from .plugin import (
    API_VERSION,
    SUPPORTED_API_VERSIONS,
    IRPPlugin,
    IRPPluginProtocol,
    state_halt_of,
    validate_plugin_class,
)
from .registry import LoadFailure, Registration, Registry, get_registry, reset_registry
from .rng import step_generator, step_rng, step_seed
from .state import IRPState
from .tools import ToolSpec, validate_tool
from .telemetry import (
    CallbackSink,
    Event,
    HaltEvent,
    JSONLSink,
    MemorySink,
    StepEvent,
    Telemetry,
    TelemetrySink,
    event_to_dict,
)
from .trust import TrustMetrics, trust_metrics

try:
    __version__ = _dist_version("sage-irp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "API_VERSION", "SUPPORTED_API_VERSIONS", "AnyOf", "BudgetExhausted", "CallbackSink", "Diverging",
    "EnergyHistory", "Event", "HaltDecision", "HaltEvent", "HaltPolicy", "IRPPlugin", "IRPPluginProtocol",
    "IRPState", "JSONLSink", "LoadFailure", "MaxSteps", "MemorySink", "NonFinite", "Plateau",
    "PluginContractError", "PluginLoadError", "RefineResult", "Registration", "Registry", "SageError",
    "StateCodecError", "StepEvent", "Telemetry", "TelemetrySink", "Threshold", "ToolSpec", "TrustMetrics",
    "UnknownPluginError", "any_of", "check_of", "decode_tree", "default_policy", "encode_tree", "event_to_dict",
    "get_registry", "hookimpl", "hookspec", "refine", "reset_registry", "step_generator", "step_rng",
    "state_halt_of", "step_seed", "trust_metrics", "validate_plugin_class", "validate_tool", "__version__",
]
