"""Projection of decoded slots onto the claim grammar: every slot becomes the well-formed claim
(order key, digit, reason and phrasing, for the slot's own cell) that the model scores highest,
so no claim fails to parse; a claim the checker rejected can be banned (its key, digit and
reason in any phrasing), so energy-guided refinement tries the model's next-best claim."""

from __future__ import annotations

import functools

import torch

from plugins.puzzles.explain import PHRASES, REASONS, Placement, phrase_group, unit_of

from .vocab import KEY_IDS, MASK_ID, MAX_KEY, PAD_ID, SLOT_LEN, encode_slot


@functools.cache
def candidates(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (n*n, C, SLOT_LEN), semantics (C,)): every well-formed slot of each cell, and the
    index of its (key, digit, reason) among ``n_semantics(n)``, the same for every cell."""
    rows, sems = [], []
    for cell in range(n * n):
        r, c = divmod(cell, n)
        slots = []
        for d in range(1, n + 1):
            for ri, reason in enumerate(REASONS):
                unit = unit_of(n, reason, r, c) + 1 if reason in ("box", "row", "column") else 0
                for v in range(len(PHRASES[phrase_group(reason)])):
                    ids = encode_slot(Placement(r, c, d, reason, unit, 1), v)
                    slots.append(ids + [PAD_ID] * (SLOT_LEN - len(ids)))
                    if cell == 0:
                        sems.append((d - 1) * len(REASONS) + ri)
        rows.append(slots)
    base = torch.tensor(rows)  # (cells, C1, L), key #1
    keyed = base.unsqueeze(1).repeat(1, MAX_KEY, 1, 1)  # (cells, keys, C1, L)
    keyed[:, :, :, 0] = torch.as_tensor(KEY_IDS)[None, :, None]
    sem = torch.tensor(sems)
    sem = (torch.arange(MAX_KEY)[:, None] * n * len(REASONS) + sem[None, :]).reshape(-1)
    return keyed.reshape(n * n, -1, SLOT_LEN), sem


def n_semantics(n: int) -> int:
    """Number of distinct (key, digit, reason) claims of one cell."""
    return MAX_KEY * n * len(REASONS)


def project(logp: torch.Tensor, cells: torch.Tensor, tokens: torch.Tensor, n: int,
            banned: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, confidence, semantics) after projecting every slot that holds a masked token onto
    its best-scoring well-formed claim that agrees with the slot's unmasked tokens and is not
    ``banned`` (B, S, n_semantics); slots without a mask keep their tokens (confidence 0 and
    semantics -1 returned for them). ``logp`` (B, S, L, V)."""
    cand, sem = candidates(n)
    out, conf = tokens.clone(), torch.zeros(tokens.shape)
    choice = torch.full(cells.shape, -1, dtype=torch.long)
    for b in range(tokens.shape[0]):
        for s in torch.nonzero(cells[b] >= 0).flatten().tolist():
            slot = tokens[b, s]
            c = cand[int(cells[b, s])]  # (C, L)
            lp = logp[b, s]  # (L, V)
            masked = slot == MASK_ID
            if masked.any():
                score = lp.gather(1, c.T).T.sum(1)  # (C,)
                agree = ((c == slot) | masked).all(1)
                score = score.masked_fill(~agree, float("-inf"))
                if banned is not None:
                    score = score.masked_fill(banned[b, s, sem], float("-inf"))
                if torch.isinf(score.max()):  # everything banned: fall back to the unbanned best
                    score = lp.gather(1, c.T).T.sum(1).masked_fill(~agree, float("-inf"))
                best = int(score.argmax())
                out[b, s] = c[best]
                choice[b, s] = int(sem[best])
                conf[b, s] = lp.gather(1, out[b, s][:, None]).squeeze(1).exp()
    return out, conf, choice
