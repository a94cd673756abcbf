"""HRM configuration (an attrs class stored beside the weights in every checkpoint)."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define(frozen=True)
class HRMConfig:
    task: str = "sudoku4"
    seq_len: int = 16
    vocab: int = 5
    n_classes: int = 4
    hidden: int = 128
    heads: int = 4
    expansion: float = 4.0
    H_layers: int = 2
    L_layers: int = 2
    H_cycles: int = 2
    L_cycles: int = 2
    max_segments: int = 8
    n_prefix: int = 1
    n_task_ids: int = 1
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    halt_exploration_prob: float = 0.1
    loss: str = attrs.field(default="softmax", validator=attrs.validators.in_(["softmax", "stablemax"]))
    variant: str = attrs.field(default="hrm", validator=attrs.validators.in_(["hrm", "trm"]))

    @property
    def total_len(self) -> int:
        return self.seq_len + self.n_prefix

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HRMConfig":
        names = {f.name for f in attrs.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown HRMConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def for_task(cls, task: str, **kw: Any) -> "HRMConfig":
        from .tasks import get_task

        t = get_task(task)
        return cls(task=task, seq_len=t.seq_len, vocab=t.vocab, n_classes=t.n_classes, **kw)
