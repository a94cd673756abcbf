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
    #: positions: "rope" (1-D rotary over the flattened sequence, the reference default),
    #: "rope2d" (rotary over (row, column) of the square grid: half of each head's rotated pairs
    #: use the row, half the column; the prefix is unrotated) or "learned" (the reference's
    #: learned absolute embedding added to the input, no rotary)
    pos_encoding: str = attrs.field(default="rope", validator=attrs.validators.in_(["rope", "rope2d", "learned"]))
    #: optional per-label-class loss weights (length ``n_classes``); the sequence loss is then
    #: the weighted mean sum(w * ce) / sum(w) over tokens. None = plain mean (the reference).
    class_weights: tuple[float, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(lambda v: tuple(float(a) for a in v)))

    #: > 0: grid cells attend only to cells within this Chebyshev distance on the square grid
    #: (plus the prefix); 0 = full attention (the reference)
    attn_window: int = 0
    #: inference ACT rule: halt when q_halt - q_continue > halt_margin (0 = the reference's
    #: q_halt > q_continue). Training always uses the reference rule; ``ship --halt-margin auto``
    #: picks the margin on the validation split (see :func:`plugins.hrm.evaluate.tune_halt_margin`)
    halt_margin: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.class_weights is not None and (len(self.class_weights) != self.n_classes
                                               or min(self.class_weights) < 0 or max(self.class_weights) <= 0):
            raise ValueError(f"class_weights must be {self.n_classes} non-negative weights, not all 0: {self.class_weights}")
        if self.pos_encoding == "rope2d" or self.attn_window > 0:
            side = int(round(self.seq_len ** 0.5))
            if side * side != self.seq_len:
                raise ValueError(f"pos_encoding 'rope2d' and attn_window need a square grid, seq_len is {self.seq_len}")
            if self.pos_encoding == "rope2d" and (self.hidden // self.heads) % 4:
                raise ValueError("pos_encoding 'rope2d' needs a head dimension divisible by 4")

    @property
    def total_len(self) -> int:
        return self.seq_len + self.n_prefix

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        if d["class_weights"] is not None:
            d["class_weights"] = list(d["class_weights"])
        return d

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
