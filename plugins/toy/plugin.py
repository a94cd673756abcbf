"""QuadraticDescent: minimise 0.5 x'Ax - b'x by (optionally noisy) gradient steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sage_core import IRPPlugin, IRPState, step_generator


class QuadraticDescent(IRPPlugin):
    """Gradient descent on a fixed random SPD quadratic; energy = 0.5 * ||Ax - b||^2.

    ``problem_seed`` fixes A and b, ``lr`` the step size, ``noise`` the std of Gaussian noise
    added per step (drawn from ``step_generator(seed, step)``, so runs are resumable bit-exactly).
    The context's ``seed`` (default 0) seeds the noise.
    """

    name = "toy"
    version = "1.0.0"
    input_kind = "vector"
    output_kind = "vector"

    def __init__(self, dim: int = 8, lr: float = 0.1, noise: float = 0.0, problem_seed: int = 0,
                 condition: float = 10.0) -> None:
        if dim < 1:
            raise ValueError(f"toy: dim must be >= 1, got {dim}")
        if not 0.0 < lr:
            raise ValueError(f"toy: lr must be > 0, got {lr}")
        self.dim, self.lr, self.noise = dim, float(lr), float(noise)
        generator = torch.Generator().manual_seed(problem_seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
        eigen = torch.linspace(1.0, condition, dim, dtype=torch.float64)
        self.A = (q * eigen) @ q.T
        self.b = torch.randn(dim, generator=generator, dtype=torch.float64)

    @classmethod
    def example(cls) -> tuple[Any, dict[str, Any]]:
        """An input and context for the conformance kit."""
        return [1.0] * 8, {"seed": 0}

    def init_state(self, x0: Any, ctx: Mapping[str, Any]) -> IRPState:
        x = torch.zeros(self.dim, dtype=torch.float64) if x0 is None else torch.as_tensor(x0, dtype=torch.float64).clone()
        if x.shape != (self.dim,):
            raise ValueError(f"toy: input must be a vector of length {self.dim}, got shape {tuple(x.shape)}")
        return IRPState(x=x, meta={"seed": int(ctx.get("seed", 0))})

    def energy(self, state: IRPState) -> float:
        g = self.A @ state.x - self.b
        return 0.5 * float(g @ g)

    def step(self, state: IRPState, budget: float | None = None) -> IRPState:
        x = state.x - self.lr * (self.A @ state.x - self.b)
        if self.noise:
            noise = torch.randn(self.dim, generator=step_generator(state.meta["seed"], state.step), dtype=torch.float64)
            x = x + self.noise * noise
        return IRPState(x=x, step=state.step + 1, meta=state.meta)
