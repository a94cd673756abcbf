"""Limits: how much one request and the whole service may ask for (413, 422 and 503 come from here)."""

from __future__ import annotations

import attrs


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"Limits.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(slots=True)
class Limits:
    """Service limits. ``max_body_bytes``: request body (413); ``max_grid``: rows and columns of
    a puzzle (422); ``max_image_pixels``: width x height of a puzzle image, checked before it is
    decoded (422); ``max_steps``: refinement steps one solve may ask for (422); ``max_queue``:
    solves queued or running at once, beyond it 503; ``queue_timeout_s``: the longest a solve
    waits for a batch slot before 503; ``max_runs``: pipeline runs stepping at once (503);
    ``max_budget``: ATP one run may ask for (422)."""

    max_body_bytes: int = attrs.field(default=64 * 1024, validator=_positive)
    max_grid: int = attrs.field(default=32, validator=_positive)
    max_image_pixels: int = attrs.field(default=4_000_000, validator=_positive)
    max_steps: int = attrs.field(default=64, validator=_positive)
    max_queue: int = attrs.field(default=512, validator=_positive)
    queue_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    max_runs: int = attrs.field(default=8, validator=_positive)
    max_budget: float = attrs.field(default=1e6, validator=_positive)
