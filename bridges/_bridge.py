"""The Bridge value type and the kind-matching rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from sage_core import IRPState

#: The wildcard kind: a bridge or plugin side declared "any" (or undeclared) matches every kind.
ANY = "any"


def kinds_match(produced: str | None, expected: str | tuple[str, ...] | None) -> bool:
    """True if a value of kind ``produced`` may be used where ``expected`` (a kind, or a tuple of
    accepted kinds) is declared."""
    if produced in (None, ANY) or expected in (None, ANY):
        return True
    if isinstance(expected, tuple):
        return ANY in expected or produced in expected
    return produced == expected


@attrs.frozen(slots=True)
class Bridge:
    """A named, typed adapter ``fn(state) -> value``; calling the bridge calls ``fn``."""

    name: str
    fn: Callable[[IRPState], Any] = attrs.field(repr=False)
    source_kind: str = ANY
    target_kind: str = ANY
    doc: str = attrs.field(default="", repr=False)

    def __call__(self, state: IRPState) -> Any:
        return self.fn(state)


def bridge(name: str | None = None, *, source_kind: str = ANY, target_kind: str = ANY) -> Callable[[Callable], Bridge]:
    """Decorator: ``@bridge("to_vector", source_kind="grid", target_kind="vector")``."""

    def wrap(fn: Callable[[IRPState], Any]) -> Bridge:
        return Bridge(name or fn.__name__, fn, source_kind, target_kind, (fn.__doc__ or "").strip())

    return wrap


def chain(*links: Bridge) -> Bridge:
    """One bridge running ``links`` in turn, each reading the previous one's value as ``state.x``
    (``a -> b -> c`` kinds); raises ValueError naming the first link whose kinds do not meet."""
    if not links:
        raise ValueError("a bridge chain needs at least one bridge")
    for before, after in zip(links, links[1:]):
        if not kinds_match(before.target_kind, after.source_kind):
            raise ValueError(f"bridge {before.name!r} produces {before.target_kind!r} but the next one, "
                             f"{after.name!r}, reads {after.source_kind!r}")
    if len(links) == 1:
        return links[0]

    def run(state: IRPState) -> Any:
        value = links[0](state)
        for link in links[1:]:
            value = link(state.evolve(x=value))
        return value

    return Bridge("+".join(link.name for link in links), run, links[0].source_kind, links[-1].target_kind,
                  " then ".join(link.doc or link.name for link in links))


def as_bridge(obj: Any, name: str | None = None) -> Bridge:
    """Coerce a Bridge, or any callable (with optional ``name``/``source_kind``/``target_kind``
    attributes), into a :class:`Bridge`."""
    if isinstance(obj, Bridge):
        return obj
    if not callable(obj):
        raise TypeError(f"a bridge must be callable, got {type(obj).__name__}")
    label = name or getattr(obj, "name", None) or getattr(obj, "__name__", None) or repr(obj)
    return Bridge(str(label), obj, getattr(obj, "source_kind", ANY) or ANY, getattr(obj, "target_kind", ANY) or ANY,
                  (getattr(obj, "__doc__", "") or "").strip())
