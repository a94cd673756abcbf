"""BatchedTanhRegression: a small torch plugin with a batched step, for continuous batching.

Minimises ``0.5 * ||tanh(W x) - y||^2`` over ``x`` by gradient steps. ``step_batch`` and
``energy_batch`` do the same arithmetic on a stack of states in one call; they agree with
``step``/``energy`` to float64 rounding. Used by the orchestrator's batching tests and
``bench/batching.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sage_core import IRPPlugin, IRPState, step_generator


class BatchedTanhRegression(IRPPlugin):
    name = "toy_batch"
    version = "1.0.0"
    input_kind = "vector"
    output_kind = "vector"

    def __init__(self, dim: int = 32, lr: float = 0.5, problem_seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"toy_batch: dim must be >= 1, got {dim}")
        self.dim, self.lr = dim, float(lr)
        generator = torch.Generator().manual_seed(problem_seed)
        self.W = torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim**0.5
        self.y = 0.9 * torch.tanh(torch.randn(dim, generator=generator, dtype=torch.float64))

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        return None, {"seed": 3}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        seed = int(ctx.get("seed", 0))
        if x0 is None:
            x = torch.randn(self.dim, generator=step_generator(seed, 0), dtype=torch.float64)
        else:
            x = torch.as_tensor(x0, dtype=torch.float64).clone()
        if x.shape != (self.dim,):
            raise ValueError(f"toy_batch: input must be a vector of length {self.dim}, got shape {tuple(x.shape)}")
        return IRPState(x=x, meta={"seed": seed})

    def energy(self, state: IRPState) -> float:
        r = torch.tanh(self.W @ state.x) - self.y
        return 0.5 * float(r @ r)

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        t = torch.tanh(self.W @ state.x)
        g = self.W.T @ ((t - self.y) * (1.0 - t * t))
        return IRPState(x=state.x - self.lr * g, step=state.step + 1, meta=state.meta)

    def step_batch(self, states: Sequence[IRPState]) -> list[IRPState]:
        """All of ``states`` stepped in one batched computation."""
        X = torch.stack([s.x for s in states])
        T = torch.tanh(X @ self.W.T)
        G = ((T - self.y) * (1.0 - T * T)) @ self.W
        X = X - self.lr * G
        # rows are views of one batch tensor (export_state copies each row's own bytes)
        return [IRPState(x=x, step=s.step + 1, meta=s.meta) for x, s in zip(X.unbind(0), states)]

    def energy_batch(self, states: Sequence[IRPState]) -> list[float]:
        X = torch.stack([s.x for s in states])
        R = torch.tanh(X @ self.W.T) - self.y
        return (0.5 * (R * R).sum(dim=1)).tolist()
