"""Decoding: mask-predict iterations (plain or energy-guided re-masking) for the NAT decoder,
greedy decoding with a key/value cache for the autoregressive baseline, and judging decoded
slots with the claim checker."""

from __future__ import annotations

import attrs
import numpy as np
import torch

from plugins.puzzles.claims import CheckResult, check_explanation
from plugins.puzzles.explain import REASONS, SINGLES, reason_holds, unit_of

from .corpus import encoder_inputs
from .grammar import candidates, n_semantics, project
from .model import Explainer
from .vocab import BOS_ID, MASK_ID, MAX_KEY, PAD_ID, SEP_ID, SLOT_LEN, render

_NEVER = (MASK_ID, BOS_ID, SEP_ID)
#: Position of the digit in a slot: ``#k rXcY = D : ...``.
DIGIT_POS = 3
#: How often the planning in :func:`plan_bans` may push one claim to a later key (two: a claim
#: moved once may be moved again by a claim it depends on; more lets cycles run every key up).
MAX_PUSH = 2


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
           rejected: torch.Tensor | None = None, rekey: torch.Tensor | None = None,
           keep_digit: torch.Tensor | None = None) -> torch.Tensor:
    """Mask the ``count`` (B,) least confident tokens of each sample (plain re-masking). Energy-guided,
    with ``rejected`` (B, S) bool: every token of a rejected claim's slot, except the digit of the
    slots in ``keep_digit`` (a right digit whose reason failed), and the order key of the slots in
    ``rekey`` (verified claims that depend on a rejected one); verified claims are not re-masked."""
    valid = (cells >= 0).unsqueeze(-1).expand_as(tokens)
    forced = torch.zeros_like(valid)
    protect = ~valid
    if rejected is not None:
        forced = rejected.unsqueeze(-1).expand_as(tokens) & valid
        protect = protect | ~forced
        if keep_digit is not None:
            forced[..., DIGIT_POS] &= ~keep_digit
            protect[..., DIGIT_POS] |= keep_digit
        if rekey is not None:
            forced[..., 0] |= rekey & (cells >= 0)
    score = conf.masked_fill(protect, float("inf")).flatten(1)
    order = score.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
    chosen = ((ranks < count[:, None]).view_as(tokens) & ~protect) | forced
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
    each; a sample stops once verified (energy < 1). ``guided`` re-masks only what the checker
    rejected and bans what the rejection rules out (:func:`guide`); plain re-masks the least
    confident tokens. Returns each sample's best (lowest-energy) judgement
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
            rejected = rekey = keep_digit = None
            if guided:
                rejected = torch.as_tensor(np.stack([j.rejected for j in judged])) & active[:, None]
                rekey, keep_digit = guide(banned, rejected, choice, digits, grids, cells)
            count = torch.where(active, schedule(n_valid, it, iters), torch.zeros_like(n_valid))
            tokens = remask(tokens, conf, cells, count, rejected, rekey, keep_digit)
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


def _sem(n: int, c: int) -> tuple[int, int, int]:
    """(0-based key, digit, reason index) of a claim index (``grammar.candidates``' layout)."""
    R = len(REASONS)
    return c // (n * R), (c % (n * R)) // R + 1, c % R


def _holds(grid: np.ndarray, cell: int, digit: int, reason: str) -> bool:
    n = grid.shape[0]
    row, col = divmod(cell, n)
    unit = unit_of(n, reason, row, col) + 1 if reason in ("box", "row", "column") else 0
    return reason_holds(grid, row, col, digit, reason, unit) is None


def holds_from(puzzle: np.ndarray, solution: np.ndarray, cells: list[int], keys: list[int], placed: list[bool],
               a: int, digit: int, reason: str, start: int = 0) -> int:
    """The first order key (0-based, >= ``start``) at which slot ``a``'s claim (``digit``, ``reason``)
    would hold given the other slots' claims at ``keys``: the digits of the ``placed`` ones (right
    digits) that come before it in the text (a smaller key, or the same key and an earlier slot,
    as :func:`plugins.language.vocab.render` orders them); ``MAX_KEY`` if at none. Singles and
    contradictions only become truer as right digits are placed, so the first key is all it takes
    (a choice is tried at every key)."""
    n = puzzle.shape[0]
    order = sorted((keys[j], j, cells[j]) for j in range(len(cells)) if j != a and placed[j])
    grid = puzzle.copy()
    i, last = 0, -1
    for k in range(start, MAX_KEY):
        while i < len(order) and (order[i][0], order[i][1]) < (k, a):
            r, c = divmod(order[i][2], n)
            grid[r, c] = solution[r, c]
            i += 1
        if last == i and reason != "choice":
            continue  # the same grid as at the key before, where it failed
        last = i
        if _holds(grid, cells[a], digit, reason):
            return k
    return MAX_KEY


def plan_bans(puzzle: np.ndarray, solution: np.ndarray, cells: list[int], sems: list[tuple[int, int, int]],
              right: list[bool], rejected: list[bool]) -> tuple[list[tuple[int, int, int, int]], set[int]]:
    """What the checker's rejections of one text rule out, for its slots (``cells``, claims ``sems``
    as (key, digit, reason), ``right`` digit or not, ``rejected``): (bans, moved), each ban
    (slot, digit, reason, first) meaning "this claim would not hold at keys below ``first``", and
    the verified slots that depend on a rejected claim.

    Each rejected claim with the right digit is projected to the first key at which its reason
    holds given the others (another single where its own holds nowhere); then, in text order, every
    claim that no longer holds there (it needed a digit that now comes later) is projected to its
    own first key, and so on (each claim at most ``MAX_PUSH`` times, so a cycle of claims that need
    each other stops). A rejected claim is then banned, for every reason of its digit, at every key
    where it would not hold given that projection; a moved verified claim is banned at the keys
    below its projected one. The model picks among what is left: the checker writes nothing."""
    S = len(cells)
    keys = [k for k, _, _ in sems]
    proj, rsn = keys[:], [r for _, _, r in sems]
    frozen: set[int] = set()
    pushes = {a: 1 for a in range(S) if rejected[a]}
    for a in range(S):
        if not (rejected[a] and right[a]):
            continue
        k, d, r = sems[a]
        best = (holds_from(puzzle, solution, cells, keys, right, a, d, REASONS[r], k + 1), r)
        if best[0] >= MAX_KEY:
            for rr, reason in enumerate(REASONS):
                if reason in SINGLES and rr != r:
                    best = min(best, (holds_from(puzzle, solution, cells, keys, right, a, d, reason), rr))
        if best[0] < MAX_KEY:
            proj[a], rsn[a] = best
        else:
            frozen.add(a)
    moved: set[int] = set()
    for _ in range(S * MAX_PUSH + 1):
        grid = puzzle.copy()
        for j in sorted(range(S), key=lambda j: (proj[j], j)):
            if not right[j]:
                continue
            if j not in frozen and not _holds(grid, cells[j], sems[j][1], REASONS[rsn[j]]):
                first = holds_from(puzzle, solution, cells, proj, right, j, sems[j][1], REASONS[rsn[j]], proj[j] + 1)
                pushes[j] = pushes.get(j, 0) + 1
                if first < MAX_KEY and pushes[j] <= MAX_PUSH:
                    proj[j] = first
                    if not rejected[j]:
                        moved.add(j)
                    break
                frozen.add(j)
            r, c = divmod(cells[j], puzzle.shape[0])
            grid[r, c] = solution[r, c]
        else:
            break
    bans = []
    for a in range(S):
        if not (rejected[a] and right[a]):
            continue
        k, d, r = sems[a]
        for rr, reason in enumerate(REASONS):
            if reason == "choice" and rr != r:
                continue
            start = k + 1 if rr == r and reason != "choice" else 0
            bans.append((a, d, rr, holds_from(puzzle, solution, cells, proj, right, a, d, reason, start)))
    bans += [(j, sems[j][1], sems[j][2], proj[j]) for j in sorted(moved)]
    return bans, moved


def guide(banned: torch.Tensor, rejected: torch.Tensor, choice: torch.Tensor, digits: torch.Tensor,
          grids: list[tuple[np.ndarray, np.ndarray]], cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy-guided re-masking: ban, in place, what the checker's rejections rule out, and say what
    else to re-mask. A wrong digit is banned under every key and reason; for a right digit whose
    reason failed, every claim of that digit is banned at the keys where it would not hold
    (:func:`plan_bans`), and so is each verified claim that depends on it below the key it
    would need. ``digits``: :func:`slot_digits`; ``grids``: each sample's (puzzle, solution) n x n.
    Returns (rekey, keep_digit), (B, S) bool: the verified slots whose order key to re-mask, and
    the rejected slots whose (right) digit to keep."""
    R = len(REASONS)
    n = banned.shape[-1] // (MAX_KEY * R)
    view = banned.view(*banned.shape[:2], MAX_KEY, n, R)
    rekey = torch.zeros(rejected.shape, dtype=torch.bool)
    keep_digit = torch.zeros(rejected.shape, dtype=torch.bool)
    ch, cl, dg, rj = choice.tolist(), cells.tolist(), digits.tolist(), rejected.tolist()
    for b in range(len(ch)):
        valid = [j for j in range(len(cl[b])) if cl[b][j] >= 0 and ch[b][j] >= 0]
        if not any(rj[b][j] for j in valid):
            continue
        sems = [_sem(n, ch[b][j]) for j in valid]
        right = [sem[1] == dg[b][j] for sem, j in zip(sems, valid)]
        rej = [rj[b][j] for j in valid]
        for i, j in enumerate(valid):
            if rej[i] and not right[i]:
                view[b, j, :, sems[i][1] - 1, :] = True
            keep_digit[b, j] = rej[i] and right[i]
        puzzle, solution = grids[b]
        bans, moved = plan_bans(puzzle, solution, [cl[b][j] for j in valid], sems, right, rej)
        for i, d, r, first in bans:
            view[b, valid[i], :first, d - 1, r] = True
        for i in moved:
            rekey[b, valid[i]] = True
    return rekey, keep_digit
