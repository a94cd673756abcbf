"""Counter-based randomness: the random numbers of step k are a pure function of (seed, k).

A plugin that draws its step's noise from ``step_generator(seed, state.step)`` needs no RNG
state in its checkpoint, and a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed derived from ``(seed, step, stream)`` with numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, step, stream]).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` for step ``step`` of a run seeded with ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(step_seed(seed, step, stream))
    return generator


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """A numpy ``Generator`` for step ``step`` of a run seeded with ``seed``."""
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, step, stream])
