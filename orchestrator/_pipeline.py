"""Pipeline: a networkx DiGraph of named plugin nodes joined by bridges; built from Python or TOML."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import networkx as nx

from bridges import Bridge, as_bridge, chain, kinds_match
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
#: The context key a feedback edge delivers into when it names none.
FEEDBACK = "feedback"
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

    def context_kind(self, key: str) -> str | None:
        """The kind the plugin declares for context key ``key`` (``context_kinds``), if any."""
        return (getattr(self.plugin, "context_kinds", None) or {}).get(key)


@attrs.define(slots=True, eq=False)
class Edge:
    """A bridge from ``source`` to ``target``: feeds the target's input (``to == "input"``) or
    the context key ``to``; a ``streaming`` edge delivers after every source step instead of
    once the source halted; a ``feedback`` edge (always streaming, into a context key) may close
    a cycle and does not hold back the target's start."""

    source: str
    target: str
    bridge: Bridge
    to: str = INPUT
    streaming: bool = False
    bridge_name: str | list[str] | None = None
    feedback: bool = False

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

    Errors name the node or edge: unknown plugin or bridge, duplicate node, a cycle with no
    feedback edge, an edge whose source or target does not exist, two producers for one input,
    and bridge kinds that do not match the plugins' declared ``output_kind``/``input_kind``
    (or ``context_kinds`` for a context key).
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

    def add_edge(self, source: str, target: str,
                 bridge: str | Bridge | Callable[..., Any] | list[str | Bridge | Callable[..., Any]] = "identity", *,
                 to: str | None = None, streaming: bool = False, feedback: bool = False) -> Edge:
        """Connect ``source`` to ``target`` through ``bridge`` (registered name or callable, or a
        list of them run in turn, checked link by link: ``["solution_path", "path_to_waypoints"]``);
        ``to`` is ``"input"`` (default) or a context key (default ``"feedback"`` for a feedback
        edge). ``feedback=True`` streams every source step into the target's ``receive`` and may
        close a cycle. Raises PipelineError naming the edge."""
        label = f"edge {source!r}->{target!r}"
        if to is None:
            to = FEEDBACK if feedback else INPUT
        streaming = bool(streaming or feedback)
        for end, role in ((source, "source"), (target, "target")):
            if end not in self.graph:
                raise PipelineError(f"{label}: {role} node {end!r} is not in the pipeline "
                                    f"(nodes: {', '.join(sorted(self.graph)) or 'none'})")
        if source == target:
            raise PipelineError(f"{label}: a node cannot feed itself (cycle)")
        if self.graph.has_edge(source, target):
            raise PipelineError(f"{label} is defined twice")
        links = list(bridge) if isinstance(bridge, (list, tuple)) else [bridge]
        bridge_name: str | list[str] | None = None
        if all(isinstance(link, str) for link in links):
            bridge_name = links[0] if isinstance(bridge, str) else list(links)
        else:
            self.spec = None
        try:
            resolved = chain(*(self._bridge(link) for link in links))
        except (UnknownPluginError, TypeError, ValueError) as exc:
            raise PipelineError(f"{label}: {exc}") from None
        src, dst = self.node(source), self.node(target)
        if not kinds_match(src.output_kind, resolved.source_kind):
            raise PipelineError(f"{label}: bridge {resolved.name!r} reads {resolved.source_kind!r} but node "
                                f"{source!r} ({src.plugin_name}) outputs {src.output_kind!r}")
        if to == INPUT:
            if feedback:
                raise PipelineError(f"{label}: a feedback edge goes into a context key of the running target "
                                    f"(into = \"NAME\", delivered through receive), not its input")
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
        elif not kinds_match(resolved.target_kind, dst.context_kind(to)):
            raise PipelineError(f"{label}: bridge {resolved.name!r} produces {resolved.target_kind!r} but node "
                                f"{target!r} ({dst.plugin_name}) takes {dst.context_kind(to)!r} as {to!r}")
        if streaming and not callable(getattr(dst.plugin, "receive", None)):
            raise PipelineError(f"{label}: streaming edges need the target plugin to define "
                                f"receive(state, key, value); {dst.plugin_name!r} does not")
        forward = self._forward()
        if not feedback and nx.has_path(forward, target, source):
            path = nx.shortest_path(forward, target, source)
            raise PipelineError(f"{label} would close the cycle {' -> '.join([*path, target])} with no feedback "
                                f"edge; mark one of its edges feedback = true")
        edge = Edge(source, target, resolved, to, streaming, bridge_name, bool(feedback))
        self.graph.add_edge(source, target, edge=edge)
        if self.spec is not None:
            entry = {"from": source, "to": target, "bridge": bridge_name, "into": to, "streaming": streaming}
            if feedback:
                entry["feedback"] = True
            self.spec["edges"].append(entry)
        return edge

    def _bridge(self, link: str | Bridge | Callable[..., Any]) -> Bridge:
        """A registered bridge by name, or a Bridge/callable as given."""
        if isinstance(link, str):
            return as_bridge(self.registry.get("bridge", link), link)
        return as_bridge(link)

    # -- reading ----------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.graph.nodes[name]["node"]
        except KeyError:
            raise PipelineError(f"no node {name!r} in pipeline {self.name!r}") from None

    def _forward(self) -> nx.DiGraph:
        """A view of the graph without its feedback edges (it must stay acyclic)."""
        graph = self.graph
        return nx.subgraph_view(graph, filter_edge=lambda u, v: not graph.edges[u, v]["edge"].feedback)

    @property
    def nodes(self) -> list[Node]:
        """Nodes in a deterministic topological order of the non-feedback edges (ties broken by
        insertion order)."""
        order = {name: i for i, name in enumerate(self.graph.nodes)}
        return [self.node(n) for n in nx.lexicographical_topological_sort(self._forward(), key=order.__getitem__)]

    def in_edges(self, name: str) -> list[Edge]:
        return [data["edge"] for _, _, data in self.graph.in_edges(name, data=True)]

    def out_edges(self, name: str) -> list[Edge]:
        return [data["edge"] for _, _, data in self.graph.out_edges(name, data=True)]

    def cycles(self) -> list[frozenset[str]]:
        """The groups of nodes that exchange state both ways (strongly connected through feedback
        edges), each as a set of node names, in order of their first node."""
        order = {name: i for i, name in enumerate(self.graph.nodes)}
        groups = [frozenset(c) for c in nx.strongly_connected_components(self.graph) if len(c) > 1]
        return sorted(groups, key=lambda group: min(map(order.__getitem__, group)))

    def validate(self) -> None:
        """Re-check the whole graph (it is checked as it is built; this catches later edits)."""
        if not self.graph:
            raise PipelineError(f"pipeline {self.name!r} has no nodes")
        forward = self._forward()
        if not nx.is_directed_acyclic_graph(forward):
            cycle = [u for u, _ in nx.find_cycle(forward)]
            raise PipelineError(f"pipeline {self.name!r} has the cycle {' -> '.join([*cycle, cycle[0]])} with no "
                                f"feedback edge; mark one of its edges feedback = true")
        for group in self.cycles():
            for edge in self.out_edges_within(group):
                if not edge.streaming and not callable(getattr(self.node(edge.target).plugin, "receive", None)):
                    raise PipelineError(
                        f"edge {edge.source!r}->{edge.target!r} lies on a cycle: {edge.target!r} gets "
                        f"{edge.source!r}'s new result each time it comes to rest, so plugin "
                        f"{self.node(edge.target).plugin_name!r} must define receive(state, key, value)")

    def out_edges_within(self, group: frozenset[str]) -> list[Edge]:
        """The edges whose both ends lie in ``group``."""
        return [data["edge"] for u, v, data in self.graph.edges(data=True) if u in group and v in group]

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
            extra = set(entry) - {"from", "to", "bridge", "into", "streaming", "feedback"}
            if extra:
                raise PipelineError(f"edge {entry['from']!r}->{entry['to']!r}: unknown key(s) {sorted(extra)}")
            pipeline.add_edge(entry["from"], entry["to"], entry.get("bridge") or "identity", to=entry.get("into"),
                              streaming=bool(entry.get("streaming", False)),
                              feedback=bool(entry.get("feedback", False)))
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
