"""bridges: typed adapters that turn a source node's state into a target node's input or context.

A bridge is a callable ``bridge(state) -> value`` with three attributes: ``name``,
``source_kind`` (what it reads: the source plugin's ``output_kind``) and ``target_kind``
(what it produces: the target plugin's ``input_kind`` when it feeds the input). The kind
``"any"`` matches everything, and a plugin that declares no kind matches every bridge.
Built-in bridges are registered through the ``sage_register_bridges`` hook like any third
party's; wrap a plain function with :func:`bridge` to give it a name and kinds; :func:`chain`
joins bridges whose kinds meet (``solved_puzzle -> path -> waypoints``).
"""

from ._bridge import ANY, Bridge, as_bridge, bridge, chain, kinds_match
from ._builtin import BUILTIN_BRIDGES, energy_bridge, flatten_bridge, identity_bridge, solution_path_bridge

__all__ = ["ANY", "BUILTIN_BRIDGES", "Bridge", "as_bridge", "bridge", "chain", "energy_bridge", "flatten_bridge",
           "identity_bridge", "kinds_match", "solution_path_bridge"]
