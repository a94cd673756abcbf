"""Telemetry: one immutable event per step and per halt, fanned out to sinks.

The hot path asks ``telemetry.active`` before building an event, so a run with no sink
attached allocates nothing for telemetry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import attrs


@attrs.frozen(slots=True)
class StepEvent:
    """One refinement step of one plugin in one session."""

    plugin: str
    session: str
    step: int
    energy: float
    d_energy: float
    atp_spent: float
    elapsed_s: float
    kind: str = "step"


@attrs.frozen(slots=True)
class HaltEvent:
    """A plugin stopped: why, after how many steps, and its trust metrics for this run."""

    plugin: str
    session: str
    step: int
    reason: str
    policy: str
    energy: float | None
    monotonicity: float
    dE_variance: float
    convergence_rate: float
    atp_spent: float
    elapsed_s: float
    kind: str = "halt"


Event = StepEvent | HaltEvent


def event_to_dict(event: Event) -> dict[str, Any]:
    """A JSON-able dict of ``event`` (with its ``kind``)."""
    return attrs.asdict(event)


@runtime_checkable
class TelemetrySink(Protocol):
    """Receives events; ``close`` releases resources (files, displays)."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """Keeps every event in ``events`` (tests, notebooks, post-run analysis)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        """Nothing to release."""

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class JSONLSink:
    """Appends one JSON object per event to a file (line-buffered, so a crash loses at most one)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8", buffering=1)

    def emit(self, event: Event) -> None:
        if self._file is None:
            raise ValueError(f"JSONLSink({self.path}) is closed")
        self._file.write(json.dumps(event_to_dict(event), allow_nan=True) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CallbackSink:
    """Calls ``callback(event)`` for every event (quick adapters, live displays)."""

    def __init__(self, callback: Callable[[Event], None]) -> None:
        self.callback = callback

    def emit(self, event: Event) -> None:
        self.callback(event)

    def close(self) -> None:
        """Nothing to release."""


class Telemetry:
    """Fans events out to attached sinks. ``active`` is False while no sink is attached."""

    __slots__ = ("_sinks", "active")

    def __init__(self, sinks: list[TelemetrySink] | tuple[TelemetrySink, ...] = ()) -> None:
        self._sinks: list[TelemetrySink] = list(sinks)
        self.active = bool(self._sinks)

    @property
    def sinks(self) -> tuple[TelemetrySink, ...]:
        return tuple(self._sinks)

    def attach(self, sink: TelemetrySink) -> TelemetrySink:
        """Attach ``sink`` and return it."""
        if not isinstance(sink, TelemetrySink):
            raise TypeError(f"{sink!r} is not a telemetry sink: it needs emit(event) and close()")
        self._sinks.append(sink)
        self.active = True
        return sink

    def detach(self, sink: TelemetrySink) -> None:
        """Detach ``sink`` (it is not closed)."""
        self._sinks.remove(sink)
        self.active = bool(self._sinks)

    def emit(self, event: Event) -> None:
        """Send ``event`` to every sink."""
        for sink in self._sinks:
            sink.emit(event)

    def close(self) -> None:
        """Close and detach every sink."""
        for sink in self._sinks:
            sink.close()
        self._sinks.clear()
        self.active = False
