"""Decoding: mask-predict iterations (plain or energy-guided re-masking) for the NAT decoder,
greedy decoding with a key/value cache for the autoregressive baseline, and judging decoded
slots with the claim checker."""

from __future__ import annotations

import attrs
import numpy as np
import torch

from plugins.puzzles.claims import CheckResult, check_explanation
from plugins.puzzles.explain import REASONS

from .corpus import encoder_inputs
from .grammar import candidates, n_semantics, project
from .model import Explainer
from .vocab import BOS_ID, MASK_ID, MAX_KEY, PAD_ID, SEP_ID, SLOT_LEN, render

_NEVER = (MASK_ID, BOS_ID, SEP_ID)


def blank_cells(puzzles: np.ndarray) -> torch.Tensor:
    """(B, S) row-major blank-cell indices of flat puzzles, -1 padded to the most blanks."""
    rows = [np.flatnonzero(p == 0) for p in np.asarray(puzzles)]
    out = torch.full((len(rows), max(1, max(len(r) for r in rows))), -1, dtype=torch.long)
    for b, r in enumerate(rows):
        out[b, :len(r)] = torch.as_tensor(r)
    return out


def initial_tokens(cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, confidence): every slot token of a real slot masked, padding slots ``<pad>``."""
    valid = (cells >= 0).unsqueeze(-1).expand(*cells.shape, SLOT_LEN)
    tokens = torch.where(valid, torch.full(valid.shape, MASK_ID), torch.full(valid.shape, PAD_ID))
    return tokens, torch.zeros(valid.shape)


def schedule(n_valid: torch.Tensor, it: int, total: int) -> torch.Tensor:
    """Tokens to re-mask before iteration ``it`` (0-based) of ``total``: N (T - it) / T, decaying."""
    if it <= 0 or it >= total:
        return torch.zeros_like(n_valid)
    return (n_valid * (total - it)) // total


@torch.no_grad()
def predict(model: Explainer, mem: torch.Tensor, cells: torch.Tensor, tokens: torch.Tensor,
            conf: torch.Tensor, choice: torch.Tensor, banned: torch.Tensor | None = None,
            grammar: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokens, confidence, semantics): the masked tokens predicted again. With ``grammar`` every
    slot holding a mask becomes the best-scoring well-formed claim that is not ``banned``
    (:func:`plugins.language.grammar.project`); without, each masked token is the argmax."""
    logits = model.nat_logits(mem, cells, tokens)
    logits[..., list(_NEVER)] = float("-inf")
    logp = logits.log_softmax(-1)
    masked = tokens == MASK_ID
    if grammar:
        n = int(round(mem.shape[1] ** 0.5))
        new, p, new_choice = project(logp, cells, tokens, n, banned)
        in_slot = masked.any(-1, keepdim=True).expand_as(tokens)
        return new, torch.where(in_slot, p, conf), torch.where(new_choice >= 0, new_choice, choice)
    p, pred = logp.max(-1)
    return torch.where(masked, pred, tokens), torch.where(masked, p.exp(), conf), choice


def remask(tokens: torch.Tensor, conf: torch.Tensor, cells: torch.Tensor, count: torch.Tensor,
           rejected: torch.Tensor | None = None) -> torch.Tensor:
    """Mask the ``count`` (B,) least confident tokens of each sample; with ``rejected`` (B, S) bool,
    every token of a rejected claim's slot first (energy-guided), then the least confident others."""
    valid = (cells >= 0).unsqueeze(-1).expand_as(tokens)
    score = conf.clone()
    forced = torch.zeros_like(valid)
    if rejected is not None:
        forced = rejected.unsqueeze(-1).expand_as(tokens) & valid
        score = score - 2.0 * forced
    score = score.masked_fill(~valid, float("inf")).flatten(1)
    count = torch.maximum(count, forced.flatten(1).sum(1))
    order = score.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    chosen = (ranks < count[:, None]).view_as(tokens) & valid
    return tokens.masked_fill(chosen, MASK_ID)


@attrs.frozen
class Judged:
    """One decoded explanation: its text, the checker's result, each slot rejected or not, energy."""

    text: str
    result: CheckResult
    rejected: np.ndarray
    energy: float


def judge(puzzle: np.ndarray, solution: np.ndarray, slots: torch.Tensor, cells: torch.Tensor,
          conf: torch.Tensor) -> Judged:
    """Render one sample's slots as text and check it: energy = false claims + blank cells no
    claim speaks of + (1 - mean confidence of its tokens)."""
    keep = cells >= 0
    ids = slots[keep].tolist()
    text, order = render(ids)
    result = check_explanation(puzzle, solution, text)
    rejected = np.zeros(len(cells), dtype=bool)
    for line, claim in zip(order, result.claims):
        rejected[line] = not claim.true
    mean_conf = float(conf[keep].mean()) if keep.any() else 1.0
    cited = {c.cell for c in result.claims}
    unaddressed = sum(cell not in cited for cell in result.missing)
    return Judged(text, result, rejected, result.n_false + unaddressed + (1.0 - mean_conf))


def grammar_next(n: int, cell: int, prefix: list[int]) -> torch.Tensor:
    """Token ids that continue ``prefix`` into a well-formed slot of ``cell`` (``<sep>`` where one ends)."""
    cand = candidates(n)[0][cell]
    k = len(prefix)
    if k:
        cand = cand[(cand[:, :k] == torch.as_tensor(prefix)).all(1)]
    nxt = cand[:, k].unique() if k < SLOT_LEN else torch.tensor([PAD_ID])
    return torch.where(nxt == PAD_ID, torch.full_like(nxt, SEP_ID), nxt)


@torch.no_grad()
def ar_decode(model: Explainer, puzzles: np.ndarray, solutions: np.ndarray,
              grammar: bool = True) -> list[list[list[int]]]:
    """Greedy autoregressive decoding of a batch: each sample's slots as lists of token ids; with
    ``grammar`` each next token is restricted to those that keep the slot a well-formed claim."""
    n = int(round(np.asarray(puzzles).shape[1] ** 0.5))
    enc = encoder_inputs(puzzles, solutions)
    mem = model.encode(enc["given"], enc["digit"])
    cells = blank_cells(puzzles)
    B = cells.shape[0]
    n_slots = (cells >= 0).sum(1)
    limit = int(n_slots.max()) * (SLOT_LEN + 1)
    caches = model.ar_cache(mem, limit)
    prev = torch.full((B,), BOS_ID)
    slot, pos = torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.long)
    out: list[list[list[int]]] = [[[] for _ in range(int(k))] for k in n_slots]
    for t in range(limit):
        done = slot >= n_slots
        if bool(done.all()):
            break
        logits = model.ar_step(mem, cells, prev, slot, pos, t, caches)
        logits[:, [MASK_ID, BOS_ID]] = float("-inf")
        if grammar:
            allowed = torch.zeros_like(logits, dtype=torch.bool)
            for b in torch.nonzero(~done).flatten().tolist():
                allowed[b, grammar_next(n, int(cells[b, slot[b]]), out[b][int(slot[b])])] = True
            logits = logits.masked_fill(~allowed, float("-inf"))
        tok = logits.argmax(-1)
        tok = torch.where(pos >= SLOT_LEN, torch.full_like(tok, SEP_ID), tok)
        for b in torch.nonzero(~done & (tok != SEP_ID)).flatten().tolist():
            out[b][int(slot[b])].append(int(tok[b]))
        is_sep = tok == SEP_ID
        slot = torch.where(done, slot, slot + is_sep.long())
        pos = torch.where(is_sep, torch.zeros_like(pos), pos + 1)
        prev = tok
    return out


def mask_predict(model: Explainer, puzzles: np.ndarray, solutions: np.ndarray, iters: int,
                 guided: bool = True, grammar: bool = True) -> tuple[list[Judged], torch.Tensor, np.ndarray]:
    """Decode a batch of same-size puzzles with ``iters`` mask-predict iterations, judging after
    each; a sample stops once verified (energy < 1). ``guided`` re-masks rejected claims first and
    bans them (their key, digit and reason). Returns each sample's best (lowest-energy) judgement
    so far, as the plugin's output, the last slot tokens and the iterations each sample used."""
    enc = encoder_inputs(puzzles, solutions)
    with torch.no_grad():
        mem = model.encode(enc["given"], enc["digit"])
    cells = blank_cells(puzzles)
    n = int(round(np.asarray(puzzles).shape[1] ** 0.5))
    grids = [(np.asarray(p).reshape(n, n), np.asarray(s).reshape(n, n)) for p, s in zip(puzzles, solutions)]
    tokens, conf = initial_tokens(cells)
    choice = torch.full(cells.shape, -1, dtype=torch.long)
    banned = torch.zeros((*cells.shape, n_semantics(n)), dtype=torch.bool) if guided else None
    digits = slot_digits(solutions, cells)
    n_valid = (cells >= 0).sum(1) * SLOT_LEN
    used = np.full(len(grids), iters)
    judged: list[Judged] = []
    best: list[Judged] = []
    for it in range(iters):
        if it:
            active = torch.tensor([j.energy >= 1 for j in judged])
            if not bool(active.any()):
                break
            rejected = None
            if guided:
                rejected = torch.as_tensor(np.stack([j.rejected for j in judged])) & active[:, None]
                ban(banned, rejected, choice, digits)
            count = torch.where(active, schedule(n_valid, it, iters), torch.zeros_like(n_valid))
            tokens = remask(tokens, conf, cells, count, rejected)
        rows = torch.tensor([not it or j.energy >= 1 for j in (judged or [None] * len(grids))])
        tokens[rows], conf[rows], choice[rows] = predict(model, mem[rows], cells[rows], tokens[rows], conf[rows],
                                                         choice[rows], None if banned is None else banned[rows],
                                                         grammar)
        judged = [j if it and j.energy < 1 else judge(p, s, tokens[b], cells[b], conf[b])
                  for b, (j, (p, s)) in enumerate(zip(judged or [None] * len(grids), grids))]
        best = [j if not it or j.energy < k.energy else k for j, k in zip(judged, best or judged)]
        for b, j in enumerate(judged):
            if j.energy < 1 and used[b] == iters:
                used[b] = min(used[b], it + 1)
    return best, tokens, used


def slot_digits(solutions: np.ndarray, cells: torch.Tensor) -> torch.Tensor:
    """(B, S) the solution's digit of each slot's cell (0 for padding slots)."""
    sol = torch.as_tensor(np.asarray(solutions).reshape(len(cells), -1), dtype=torch.long)
    return torch.where(cells >= 0, sol.gather(1, cells.clamp(min=0)), torch.zeros_like(cells))


def ban(banned: torch.Tensor, rejected: torch.Tensor, choice: torch.Tensor, digits: torch.Tensor) -> None:
    """Ban, in place, what the checker's rejection of each slot's claim (key, digit, reason) rules
    out: a wrong digit under every key and reason; a right digit whose reason did not hold, that
    reason under this key and every earlier one (a single that fails at a point of the text fails
    before it too: placements only remove candidates). ``digits``: :func:`slot_digits`."""
    b, s = torch.nonzero(rejected & (choice >= 0), as_tuple=True)
    if not len(b):
        return
    n_reasons = len(REASONS)
    n = banned.shape[-1] // (MAX_KEY * n_reasons)
    view = banned.view(*banned.shape[:2], MAX_KEY, n, n_reasons)
    c = choice[b, s]
    key, digit, reason = c // (n * n_reasons), (c % (n * n_reasons)) // n_reasons, c % n_reasons
    for bi, si, k, d, r, right in zip(b.tolist(), s.tolist(), key.tolist(), digit.tolist(), reason.tolist(),
                                      (digit + 1 == digits[b, s]).tolist()):
        if right:
            view[bi, si, :k + 1, d, r] = True
        else:
            view[bi, si, :, d, :] = True
