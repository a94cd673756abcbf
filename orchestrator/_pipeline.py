"""Pipeline: a networkx DiGraph of named plugin nodes joined by bridges; built from Python or TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import networkx as nx

from bridges import Bridge, as_bridge, kinds_match
from sage_core import (
    Diverging,
    HaltPolicy,
    MaxSteps,
    Plateau,
    Registry,
    SageError,
    Threshold,
    UnknownPluginError,
    any_of,
    get_registry,
)

#: Edge target meaning "the target's input x0"; any other ``to_key`` is a context key.
INPUT = "input"
DEFAULT_MAX_STEPS = 100


class PipelineError(SageError, ValueError):
    """A pipeline is malformed; the message names the node or edge at fault."""


@attrs.define(slots=True, eq=False)
class Node:
    """One plugin instance in a pipeline, with its own halting policy, ATP floor and time limit."""

    name: str
    plugin: Any
    plugin_name: str
    config: dict[str, Any] = attrs.field(factory=dict)
    policy: HaltPolicy | None = None
    halt_spec: dict[str, Any] = attrs.field(factory=dict)
    floor: float | None = None
    timeout: float | None = None
    seed: int = 0
    input: Any = None
    from_registry: bool = False

    @property
    def input_kind(self) -> str | None:
        return getattr(self.plugin, "input_kind", None)

    @property
    def output_kind(self) -> str | None:
        return getattr(self.plugin, "output_kind", None)


@attrs.define(slots=True, eq=False)
class Edge:
    """A bridge from ``source`` to ``target``: feeds the target's input (``to == "input"``) or
    the context key ``to``; a ``streaming`` edge delivers after every source step instead of
    once the source halted."""

    source: str
    target: str
    bridge: Bridge
    to: str = INPUT
    streaming: bool = False
    bridge_name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.source}->{self.target}"


def policy_from_spec(spec: Mapping[str, Any] | None) -> HaltPolicy:
    """Build a halting policy from config keys ``max_steps``, ``threshold``, ``plateau``
    (eps, or a table with ``eps`` and ``window``) and ``diverging`` (k).

    NaN/inf energies and the ATP budget are always checked by the orchestrator itself.
    """
    spec = dict(spec or {})
    unknown = set(spec) - {"max_steps", "threshold", "plateau", "diverging"}
    if unknown:
        raise PipelineError(f"unknown halt option(s) {sorted(unknown)}; use max_steps, threshold, plateau, diverging")
    policies: list[HaltPolicy] = []
    if "threshold" in spec:
        policies.append(Threshold(float(spec["threshold"])))
    if "plateau" in spec:
        plateau = spec["plateau"]
        if isinstance(plateau, Mapping):
            policies.append(Plateau(float(plateau["eps"]), int(plateau.get("window", 5))))
        else:
            policies.append(Plateau(float(plateau)))
    if "diverging" in spec:
        policies.append(Diverging(int(spec["diverging"])))
    policies.append(MaxSteps(int(spec.get("max_steps", DEFAULT_MAX_STEPS))))
    return any_of(policies)


class Pipeline:
    """Named plugin nodes and bridge edges (a ``networkx.DiGraph``), validated as it is built.

    >>> p = Pipeline()
    >>> p.add_node("a", "toy", config={"dim": 4}, halt={"max_steps": 20})
    >>> p.add_node("b", "toy", config={"dim": 4})
    >>> p.add_edge("a", "b", "identity")

    Errors name the node or edge: unknown plugin or bridge, duplicate node, cycle, an edge whose
    source or target does not exist, two producers for one input, and bridge kinds that do not
    match the plugins' declared ``output_kind``/``input_kind``.
    """

    def __init__(self, name: str = "pipeline", *, registry: Registry | None = None) -> None:
        self.name = name
        self.graph = nx.DiGraph()
        self._registry = registry
        self.settings: dict[str, Any] = {}
        self.spec: dict[str, Any] | None = {"pipeline": {"name": name}, "nodes": {}, "edges": []}

    @property
    def registry(self) -> Registry:
        return self._registry or get_registry()

    # -- building ---------------------------------------------------------------------------
    def add_node(self, name: str, plugin: Any, *, config: Mapping[str, Any] | None = None,
                 halt: Mapping[str, Any] | HaltPolicy | None = None, floor: float | None = None,
                 timeout: float | None = None, seed: int = 0, input: Any = None) -> Node:
        """Add node ``name`` running ``plugin``: a registered plugin name (instantiated with
        ``config``) or a plugin instance. ``halt`` is a policy or a dict for :func:`policy_from_spec`."""
        if not isinstance(name, str) or not name:
            raise PipelineError(f"node name must be a non-empty str, got {name!r}")
        if name in self.graph:
            raise PipelineError(f"node {name!r} is defined twice")
        config = dict(config or {})
        if isinstance(plugin, str):
            try:
                instance = self.registry.create(plugin, **config)
            except UnknownPluginError as exc:
                raise PipelineError(f"node {name!r}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise PipelineError(f"node {name!r}: plugin {plugin!r} rejected its config {config}: {exc}") from exc
            plugin_name, from_registry = plugin, True
        else:
            instance, from_registry = plugin, False
            plugin_name = getattr(plugin, "name", None) or type(plugin).__name__
            missing = [m for m in ("init_state", "energy", "step") if not callable(getattr(plugin, m, None))]
            if missing:
                raise PipelineError(f"node {name!r}: {plugin!r} is not an IRP plugin (missing {', '.join(missing)})")
            self.spec = None  # a Python object cannot be written back to TOML
        if isinstance(halt, Mapping) or halt is None:
            halt_spec = dict(halt or {})
            try:
                policy = policy_from_spec(halt_spec)
            except (PipelineError, KeyError, TypeError, ValueError) as exc:
                raise PipelineError(f"node {name!r}: bad halt options {halt_spec}: {exc}") from None
        else:
            halt_spec, policy = {}, halt
            self.spec = None
        if timeout is not None and not timeout > 0:
            raise PipelineError(f"node {name!r}: timeout must be > 0 seconds, got {timeout!r}")
        if floor is not None and floor < 0:
            raise PipelineError(f"node {name!r}: floor must be >= 0 ATP, got {floor!r}")
        node = Node(name, instance, plugin_name, config, policy, halt_spec, floor, timeout, int(seed), input,
                    from_registry)
        self.graph.add_node(name, node=node)
        if self.spec is not None:
            entry: dict[str, Any] = {"plugin": plugin_name, "config": config, "halt": halt_spec, "seed": int(seed)}
            if floor is not None:
                entry["floor"] = floor
            if timeout is not None:
                entry["timeout"] = timeout
            if input is not None:
                entry["input"] = input
            self.spec["nodes"][name] = entry
        return node

    def add_edge(self, source: str, target: str, bridge: str | Bridge | Callable[..., Any] = "identity", *,
                 to: str = INPUT, streaming: bool = False) -> Edge:
        """Connect ``source`` to ``target`` through ``bridge`` (registered name or callable);
        ``to`` is ``"input"`` or a context key; raises PipelineError naming the edge."""
        label = f"edge {source!r}->{target!r}"
        for end, role in ((source, "source"), (target, "target")):
            if end not in self.graph:
                raise PipelineError(f"{label}: {role} node {end!r} is not in the pipeline "
                                    f"(nodes: {', '.join(sorted(self.graph)) or 'none'})")
        if source == target:
            raise PipelineError(f"{label}: a node cannot feed itself (cycle)")
        if self.graph.has_edge(source, target):
            raise PipelineError(f"{label} is defined twice")
        bridge_name = bridge if isinstance(bridge, str) else None
        if isinstance(bridge, str):
            try:
                resolved = as_bridge(self.registry.get("bridge", bridge), bridge)
            except UnknownPluginError as exc:
                raise PipelineError(f"{label}: {exc}") from None
        else:
            try:
                resolved = as_bridge(bridge)
            except TypeError as exc:
                raise PipelineError(f"{label}: {exc}") from None
            self.spec = None
        src, dst = self.node(source), self.node(target)
        if not kinds_match(src.output_kind, resolved.source_kind):
            raise PipelineError(f"{label}: bridge {resolved.name!r} reads {resolved.source_kind!r} but node "
                                f"{source!r} ({src.plugin_name}) outputs {src.output_kind!r}")
        if to == INPUT:
            if not kinds_match(resolved.target_kind, dst.input_kind):
                raise PipelineError(f"{label}: bridge {resolved.name!r} produces {resolved.target_kind!r} but node "
                                    f"{target!r} ({dst.plugin_name}) takes {dst.input_kind!r}")
            other = [e for e in self.in_edges(target) if e.to == INPUT]
            if other:
                raise PipelineError(f"{label}: node {target!r} already gets its input from {other[0].source!r}")
            if dst.input is not None:
                raise PipelineError(f"{label}: node {target!r} has a literal input and an input edge")
        elif not isinstance(to, str) or not to:
            raise PipelineError(f"{label}: 'to' must be 'input' or a context key, got {to!r}")
        if streaming and not callable(getattr(dst.plugin, "receive", None)):
            raise PipelineError(f"{label}: streaming edges need the target plugin to define "
                                f"receive(state, key, value); {dst.plugin_name!r} does not")
        if nx.has_path(self.graph, target, source):
            path = nx.shortest_path(self.graph, target, source)
            raise PipelineError(f"{label} would close a cycle: {' -> '.join([*path, target])}")
        edge = Edge(source, target, resolved, to, bool(streaming), bridge_name)
        self.graph.add_edge(source, target, edge=edge)
        if self.spec is not None:
            self.spec["edges"].append({"from": source, "to": target, "bridge": bridge_name, "into": to,
                                       "streaming": bool(streaming)})
        return edge

    # -- reading ----------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.graph.nodes[name]["node"]
        except KeyError:
            raise PipelineError(f"no node {name!r} in pipeline {self.name!r}") from None

    @property
    def nodes(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties broken by insertion order)."""
        order = {name: i for i, name in enumerate(self.graph.nodes)}
        return [self.node(n) for n in nx.lexicographical_topological_sort(self.graph, key=order.__getitem__)]

    def in_edges(self, name: str) -> list[Edge]:
        return [data["edge"] for _, _, data in self.graph.in_edges(name, data=True)]

    def out_edges(self, name: str) -> list[Edge]:
        return [data["edge"] for _, _, data in self.graph.out_edges(name, data=True)]

    def validate(self) -> None:
        """Re-check the whole graph (it is checked as it is built; this catches later edits)."""
        if not self.graph:
            raise PipelineError(f"pipeline {self.name!r} has no nodes")
        if not nx.is_directed_acyclic_graph(self.graph):
            cycle = nx.find_cycle(self.graph)
            raise PipelineError(f"pipeline {self.name!r} has a cycle through node {cycle[0][0]!r}")

    def __repr__(self) -> str:
        return f"<Pipeline {self.name!r}: {len(self.graph)} nodes, {self.graph.number_of_edges()} edges>"

    # -- TOML -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], *, registry: Registry | None = None) -> Pipeline:
        """Build from the dict form of a pipeline TOML file (see docs/orchestrator.md)."""
        head = dict(spec.get("pipeline", {}))
        unknown = set(spec) - {"pipeline", "nodes", "edges"}
        if unknown:
            raise PipelineError(f"unknown top-level table(s) {sorted(unknown)}; expected pipeline, nodes, edges")
        pipeline = cls(str(head.pop("name", "pipeline")), registry=registry)
        pipeline.settings = head
        pipeline.spec["pipeline"].update(head)  # type: ignore[index]
        nodes = spec.get("nodes", {})
        if not isinstance(nodes, Mapping) or not nodes:
            raise PipelineError("a pipeline needs a [nodes.NAME] table per node")
        for name, entry in nodes.items():
            if not isinstance(entry, Mapping) or "plugin" not in entry:
                raise PipelineError(f"node {name!r}: needs plugin = \"NAME\"")
            extra = set(entry) - {"plugin", "config", "halt", "floor", "timeout", "seed", "input"}
            if extra:
                raise PipelineError(f"node {name!r}: unknown key(s) {sorted(extra)}")
            pipeline.add_node(name, entry["plugin"], config=entry.get("config"), halt=entry.get("halt"),
                              floor=entry.get("floor"), timeout=entry.get("timeout"), seed=entry.get("seed", 0),
                              input=entry.get("input"))
        for i, entry in enumerate(spec.get("edges", [])):
            if not isinstance(entry, Mapping) or "from" not in entry or "to" not in entry:
                raise PipelineError(f"edge #{i + 1}: needs from = \"NODE\" and to = \"NODE\"")
            extra = set(entry) - {"from", "to", "bridge", "into", "streaming"}
            if extra:
                raise PipelineError(f"edge {entry['from']!r}->{entry['to']!r}: unknown key(s) {sorted(extra)}")
            pipeline.add_edge(entry["from"], entry["to"], entry.get("bridge") or "identity",
                              to=entry.get("into", INPUT), streaming=bool(entry.get("streaming", False)))
        pipeline.validate()
        return pipeline

    @classmethod
    def from_toml(cls, path: str | Path, *, registry: Registry | None = None) -> Pipeline:
        """Read a pipeline TOML file; errors name the file and the node or edge."""
        path = Path(path)
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(f"{path}: not valid TOML: {exc}") from None
        try:
            return cls.from_dict(spec, registry=registry)
        except PipelineError as exc:
            raise PipelineError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The dict form (as read from TOML); PipelineError if a node or bridge is a Python object."""
        if self.spec is None:
            raise PipelineError(f"pipeline {self.name!r} holds Python objects (plugin instances, callables or "
                                "policies) and cannot be written as a spec; build it from registered names")
        return self.spec
