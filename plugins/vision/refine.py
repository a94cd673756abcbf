"""Analysis by synthesis in the cell model's latent space: the energy of a cell reading and one
gradient step on it.

A cell's latent is its class logits and its style vector. The decoder renders the cell from
(class probabilities, style); the cell's energy is

    RECON * mean squared error(rendered, observed) + STYLE/2 * |style|^2
    + PRIOR * cross-entropy(probabilities, encoder's belief) + ENTROPY * entropy(probabilities)

so a reading is good when its rendering explains the pixels, it stays near what the encoder saw,
and it commits to one class. Classes the grid does not allow are masked out throughout.
"""

from __future__ import annotations

import torch

from .model import CellNet

RECON = 100.0
STYLE = 0.01
PRIOR = 0.5
ENTROPY = 0.5
MASKED = -1e4  #: logit of a class the grid does not allow (finite: states are exported)
LR_LOGITS = 2.0
LR_STYLE = 0.5


def probabilities(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the allowed classes (``allowed`` broadcasts against ``logits``)."""
    return torch.softmax(logits.masked_fill(~allowed, MASKED), dim=-1)


def cell_energies(model: CellNet, cells: torch.Tensor, logits: torch.Tensor, style: torch.Tensor,
                  prior: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """(B,) energy of each cell's reading (see the module docstring)."""
    p = probabilities(logits, allowed)
    recon = ((model.decode(p, style) - cells) ** 2).mean(dim=(1, 2))
    logp = torch.log(p.clamp_min(1e-12))
    cross = -(p * prior.masked_fill(~allowed, 0.0)).sum(-1)
    entropy = -(p * logp).sum(-1)
    return RECON * recon + 0.5 * STYLE * (style ** 2).sum(-1) + PRIOR * cross + ENTROPY * entropy


def descend(model: CellNet, cells: torch.Tensor, logits: torch.Tensor, style: torch.Tensor,
            prior: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One gradient step on (logits, style) of the given cells: (new logits, new style, their energies)."""
    lg = logits.detach().clone().requires_grad_(True)
    st = style.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        e = cell_energies(model, cells, lg, st, prior, allowed).sum()
        g_l, g_s = torch.autograd.grad(e, (lg, st))
    with torch.no_grad():
        new_l = (lg - LR_LOGITS * g_l).masked_fill(~allowed, MASKED)
        new_s = st - LR_STYLE * g_s
        return new_l, new_s, cell_energies(model, cells, new_l, new_s, prior, allowed)
