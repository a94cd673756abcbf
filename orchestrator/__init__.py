"""orchestrator: run pipelines of IRP plugins under an ATP budget, with trust, scheduling,
fault isolation, checkpoint/resume, several backends and continuous batching.

See docs/orchestrator.md. The public face::

    from orchestrator import Pipeline, Orchestrator
    pipeline = Pipeline.from_toml("examples/pipelines/toy_chain.toml")
    result = Orchestrator(pipeline).run(budget=200)
"""

from ._backends import InlineBackend, ThreadBackend, make_backend
from ._batching import BatchPool, PoolResult
from ._budget import share, split_budget
from ._faults import BAD_TYPE, ERROR, FAULT_KINDS, NON_FINITE, TIMEOUT, UPSTREAM, Fault
from ._orchestrator import NodeResult, Orchestrator, OrchestratorError, Result
from ._pipeline import Edge, Node, Pipeline, PipelineError, policy_from_spec
from ._sessions import SessionStats, run_sessions
from ._scheduler import EnergyDropScheduler, RoundRobinScheduler, Scheduler
from ._trust import DEFAULT_TRUST, MAX_TRUST, MIN_TRUST, RATE, TrustStore, session_score, updated_trust


def RayBackend(**kwargs):  # noqa: N802 - a lazy class alias: Ray is an optional extra
    """The Ray backend (``pip install sage-irp[ray]``); see :class:`orchestrator._ray.RayBackend`."""
    from ._ray import RayBackend as _RayBackend

    return _RayBackend(**kwargs)


__all__ = [
    "BAD_TYPE", "DEFAULT_TRUST", "ERROR", "FAULT_KINDS", "MAX_TRUST", "MIN_TRUST", "NON_FINITE", "RATE", "TIMEOUT",
    "UPSTREAM", "BatchPool", "Edge", "EnergyDropScheduler", "Fault", "InlineBackend", "Node", "NodeResult",
    "Orchestrator", "OrchestratorError", "Pipeline", "PipelineError", "PoolResult", "RayBackend", "Result",
    "RoundRobinScheduler", "Scheduler", "SessionStats", "run_sessions", "ThreadBackend", "TrustStore", "make_backend", "policy_from_spec",
    "session_score", "share", "split_budget", "updated_trust",
]
