"""Trust per plugin, updated after each session from its telemetry; bounded and persisted.

Update rule, applied once per session to every node that took at least one step or failed
(nodes sharing a plugin update it in pipeline order)::

    drop  = clip((e_0 - e_n) / max(|e_0|, 1e-12), 0, 1)       # share of the initial energy removed
    score = 0                                  if the node failed (raised, NaN/inf, bad type, timeout)
          = 0.5 * monotonicity + 0.5 * drop    otherwise
    trust <- clip((1 - RATE) * trust + RATE * score, MIN_TRUST, MAX_TRUST)

with ``RATE = 0.2``, ``MIN_TRUST = 0.05``, ``MAX_TRUST = 1.0`` and a new plugin starting at
``DEFAULT_TRUST = 0.5``. A plugin that always converges monotonically scores ~1 and gains
trust toward 1; one that fails scores 0 and loses it toward 0.05 (never 0, so it still gets
a share of the budget beyond its floor). Trust weights the ATP split of the next session.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import msgpack

from sage_core import EnergyHistory, trust_metrics

RATE = 0.2
MIN_TRUST = 0.05
MAX_TRUST = 1.0
DEFAULT_TRUST = 0.5
#: How long merge_into waits for another process's merge (each takes milliseconds).
LOCK_TIMEOUT_S = 60.0
_TINY = 1e-12


def session_score(history: EnergyHistory, failed: bool) -> float:
    """The score in [0, 1] of one node's session (see the module docstring)."""
    if failed:
        return 0.0
    energies = history.energies
    if len(energies) < 2:
        return 0.5
    first, last = energies[0], energies[-1]
    drop = (first - last) / max(abs(first), _TINY)
    drop = 0.0 if not math.isfinite(drop) else min(max(drop, 0.0), 1.0)
    return 0.5 * trust_metrics(history).monotonicity + 0.5 * drop


def updated_trust(trust: float, score: float) -> float:
    """One application of the update rule."""
    return min(max((1.0 - RATE) * trust + RATE * score, MIN_TRUST), MAX_TRUST)


@attrs.define(slots=True)
class TrustRecord:
    """Trust of one plugin: the value, and how many sessions and failures it is built on."""

    value: float = DEFAULT_TRUST
    sessions: int = 0
    failures: int = 0


class TrustStore:
    """Trust per plugin name. Saved in every session manifest and, optionally, in a msgpack file
    shared by sessions (``TrustStore.load(path)`` / ``save(path)``) so it carries across runs."""

    def __init__(self, records: Mapping[str, TrustRecord] | None = None) -> None:
        self._records: dict[str, TrustRecord] = dict(records or {})
        #: Session outcomes applied since this store was built: (plugin, score, failed).
        self._pending: list[tuple[str, float, bool]] = []

    def get(self, plugin: str) -> float:
        record = self._records.get(plugin)
        return record.value if record is not None else DEFAULT_TRUST

    def record(self, plugin: str) -> TrustRecord:
        return self._records.get(plugin) or TrustRecord()

    def update(self, plugin: str, history: EnergyHistory, failed: bool) -> float:
        """Apply one session's outcome; returns the new trust."""
        score = session_score(history, failed)
        self._pending.append((plugin, score, failed))
        return self._apply(plugin, score, failed)

    def _apply(self, plugin: str, score: float, failed: bool) -> float:
        record = self._records.setdefault(plugin, TrustRecord())
        record.value = updated_trust(record.value, score)
        record.sessions += 1
        record.failures += int(failed)
        return record.value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def as_dict(self) -> dict[str, float]:
        return {name: self._records[name].value for name in sorted(self._records)}

    def to_dict(self) -> dict[str, Any]:
        return {name: attrs.asdict(self._records[name]) for name in sorted(self._records)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrustStore:
        records = {}
        for name, rec in data.items():
            value = float(rec["value"])
            if not (MIN_TRUST <= value <= MAX_TRUST) and value != DEFAULT_TRUST:
                raise ValueError(f"trust of {name!r} is {value}, outside [{MIN_TRUST}, {MAX_TRUST}]")
            records[str(name)] = TrustRecord(value, int(rec["sessions"]), int(rec["failures"]))
        return cls(records)

    def copy(self) -> TrustStore:
        return TrustStore.from_dict(self.to_dict())

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (the session store's temp file, fsync, rename, fsync of the directory)."""
        from ._persist import write_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, msgpack.packb({"schema": 1, "trust": self.to_dict()}))

    def merge_into(self, path: str | os.PathLike[str]) -> None:
        """Apply this store's session outcomes to the trust file at ``path`` and write it back,
        under a file lock: sessions finishing at once in several processes each add their
        outcomes instead of the last writer's file replacing the others'. This store then holds
        the merged records."""
        from ._persist import FileLock

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock").held(LOCK_TIMEOUT_S, lambda: TimeoutError(
                f"{path}.lock: another process held the trust file for {LOCK_TIMEOUT_S:g} s")):
            merged = TrustStore.load(path)
            for plugin, score, failed in self._pending:
                merged._apply(plugin, score, failed)
            merged.save(path)
        self._records, self._pending = merged._records, []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrustStore:
        """Read a file written by :meth:`save`; a missing file is an empty store."""
        path = Path(path)
        if not path.exists():
            return cls()
        try:
            data = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ValueError(f"{path}: not a sage trust file ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") != 1 or not isinstance(data.get("trust"), dict):
            raise ValueError(f"{path}: not a sage trust file")
        return cls.from_dict(data["trust"])

    def __repr__(self) -> str:
        return f"TrustStore({self.as_dict()})"
