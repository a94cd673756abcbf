"""Value types: what is saved (snapshots) and what the store reports (infos)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import msgpack
import torch


def _is_mapping(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if type(value) is not dict and not isinstance(value, Mapping):  # dict first: loads build many
        raise TypeError(f"{attribute.name} must be a mapping, got {type(value).__name__}")


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _same_tensors(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if list(a) != list(b):
        return False
    for key in a:
        x, y = torch.as_tensor(a[key]), torch.as_tensor(b[key])
        if x.dtype != y.dtype or x.shape != y.shape or _tensor_bytes(x) != _tensor_bytes(y):
            return False
    return True


def _same_plain(a: Any, b: Any) -> bool:
    """Bit-exact equality of msgpack-able values (NaN equals the same NaN; tuple == list)."""
    try:
        return msgpack.packb(a, use_bin_type=True) == msgpack.packb(b, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return False


@attrs.frozen(eq=False)
class PluginSnapshot:
    """One node's state as its plugin exported it (``plugin.export_state(state)``).

    After :meth:`SessionStore.load`, ``tensors`` is a read-on-touch mapping
    (:class:`persistence.LazyTensors`) rather than a ``dict``; ``dict(snapshot.tensors)``
    reads and verifies everything.
    """

    plugin: str = attrs.field(validator=attrs.validators.instance_of(str))
    version: str = attrs.field(converter=str)
    api_version: int = attrs.field(validator=attrs.validators.instance_of(int))
    tensors: Mapping[str, torch.Tensor] = attrs.field(validator=_is_mapping)
    meta: dict[str, Any] = attrs.field(validator=_is_mapping)

    def equals(self, other: PluginSnapshot) -> bool:
        """Bit-exact equality: names, versions, tensor names/dtypes/shapes/bytes and meta."""
        return (isinstance(other, PluginSnapshot) and (self.plugin, self.version, self.api_version)
                == (other.plugin, other.version, other.api_version)
                and _same_tensors(self.tensors, other.tensors) and _same_plain(self.meta, other.meta))


@attrs.frozen(eq=False)
class SessionSnapshot:
    """Everything a session needs to continue: node states, orchestrator state, RNG states.

    ``nodes`` is keyed by node name (order kept); ``orchestrator`` is a msgpack-able dict
    (budgets, trust, scheduler state, step counters); ``rng`` comes from
    :func:`persistence.capture_rng_state` (``{}`` for none).
    """

    nodes: Mapping[str, PluginSnapshot] = attrs.field(validator=_is_mapping)
    orchestrator: dict[str, Any] = attrs.field(factory=dict, validator=_is_mapping)
    rng: dict[str, Any] = attrs.field(factory=dict, validator=_is_mapping)

    def equals(self, other: SessionSnapshot) -> bool:
        """Bit-exact equality of every node, the orchestrator state and the RNG state."""
        return (isinstance(other, SessionSnapshot) and list(self.nodes) == list(other.nodes)
                and all(self.nodes[name].equals(other.nodes[name]) for name in self.nodes)
                and _same_plain(self.orchestrator, other.orchestrator) and _same_plain(self.rng, other.rng))


@attrs.frozen
class NodeInfo:
    """Summary of one node in a checkpoint (no tensor data is read to build it)."""

    name: str
    plugin: str
    version: str
    api_version: int
    step: int | None
    energy: float | None
    tensors: int
    bytes: int


@attrs.frozen
class CheckpointInfo:
    """One checkpoint of a session: its number, when it was written, its nodes and size."""

    number: int
    written: float
    bytes: int
    nodes: tuple[NodeInfo, ...]


@attrs.frozen
class SessionInfo:
    """What ``SessionStore.info``/``list`` report about a session.

    ``latest`` describes the newest loadable checkpoint (``None`` for a session without one);
    ``checkpoints`` lists the numbers of all checkpoint directories; ``problems`` lists
    checkpoints that could not be read (``"ckpt N: reason"``), newest first.
    """

    id: str
    path: str
    created: float
    updated: float
    bytes: int
    checkpoints: tuple[int, ...]
    latest: CheckpointInfo | None
    problems: tuple[str, ...] = ()

    @property
    def plugins(self) -> dict[str, str]:
        return {} if self.latest is None else {n.name: n.plugin for n in self.latest.nodes}

    @property
    def steps(self) -> dict[str, int | None]:
        return {} if self.latest is None else {n.name: n.step for n in self.latest.nodes}

    @property
    def energies(self) -> dict[str, float | None]:
        return {} if self.latest is None else {n.name: n.energy for n in self.latest.nodes}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (what ``sage sessions list --json`` prints per session)."""
        latest = self.latest
        return {
            "id": self.id, "path": self.path, "created": self.created, "updated": self.updated,
            "bytes": self.bytes, "checkpoints": list(self.checkpoints),
            "latest": None if latest is None else latest.number,
            "plugins": self.plugins, "steps": self.steps, "energies": self.energies,
            "nodes": [] if latest is None else [attrs.asdict(n) for n in latest.nodes],
            "problems": list(self.problems),
        }


__all__ = ["CheckpointInfo", "NodeInfo", "PluginSnapshot", "SessionInfo", "SessionSnapshot"]
