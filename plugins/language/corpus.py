"""The training corpus: generated Sudoku puzzles with the symbolic explainer's placements, and
batches of model inputs and slot targets with phrasings drawn afresh for every batch.

Splits use disjoint seeds: training ``seed`` (default 0), validation 9002, held-out test 9001.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import torch

from plugins.puzzles import sudoku
from plugins.puzzles.explain import PHRASES, REASONS, Placement, explain_sudoku, phrase_group

from .vocab import MAX_KEY, PAD_ID, SEP_ID, SLOT_LEN, encode_slot

TEST_SEED, VALID_SEED = 9001, 9002


@attrs.frozen
class Corpus:
    """Puzzles of one size n: ``puzzles``/``solutions`` (P, n*n); per blank cell in row-major order
    (padded with -1 to S slots) its ``cells`` index, ``reasons`` (index into REASONS), ``units``
    and ``rounds``."""

    n: int
    puzzles: np.ndarray
    solutions: np.ndarray
    cells: np.ndarray
    reasons: np.ndarray
    units: np.ndarray
    rounds: np.ndarray

    def __len__(self) -> int:
        return len(self.puzzles)

    def placements(self, i: int) -> list[Placement]:
        """The placements of puzzle ``i``, one per blank cell, row-major."""
        out = []
        for cell, reason, unit, rnd in zip(self.cells[i], self.reasons[i], self.units[i], self.rounds[i]):
            if cell < 0:
                break
            r, c = divmod(int(cell), self.n)
            out.append(Placement(r, c, int(self.solutions[i, cell]), REASONS[reason], int(unit), int(rnd)))
        return out

    def grids(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(puzzle, solution) of puzzle ``i`` as n x n grids."""
        return self.puzzles[i].reshape(self.n, self.n), self.solutions[i].reshape(self.n, self.n)


def generate(n: int, count: int, seed: int) -> Corpus:
    """``count`` unique-solution puzzles of size n from ``seed`` with their explanations (puzzles
    needing more than MAX_KEY rounds are skipped and replaced)."""
    rng = np.random.default_rng([seed, n])
    slots = n * n
    arrays = {k: np.full((count, slots), -1, np.int64) for k in ("cells", "reasons", "units", "rounds")}
    puzzles = np.zeros((count, slots), np.int64)
    solutions = np.zeros((count, slots), np.int64)
    i = 0
    while i < count:
        p, s = sudoku.make_puzzle(n, rng)
        steps = sorted(explain_sudoku(p, s), key=lambda pl: (pl.row, pl.col))
        if max(pl.round for pl in steps) > MAX_KEY:
            continue
        puzzles[i], solutions[i] = p.reshape(-1), s.reshape(-1)
        for j, pl in enumerate(steps):
            arrays["cells"][i, j] = pl.row * n + pl.col
            arrays["reasons"][i, j] = REASONS.index(pl.reason)
            arrays["units"][i, j] = pl.unit
            arrays["rounds"][i, j] = pl.round
        i += 1
    width = max(1, int((arrays["cells"] >= 0).sum(1).max()))
    return Corpus(n, puzzles, solutions, **{k: v[:, :width] for k, v in arrays.items()})


def load_or_generate(n: int, count: int, seed: int, cache: Path | None = None) -> Corpus:
    """:func:`generate`, cached as an ``.npz`` (no pickle) under ``cache`` when given."""
    path = None if cache is None else Path(cache) / f"corpus_n{n}_c{count}_s{seed}.npz"
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Corpus(n, **{k: z[k] for k in ("puzzles", "solutions", "cells", "reasons", "units", "rounds")})
    corpus = generate(n, count, seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: getattr(corpus, k) for k in ("puzzles", "solutions", "cells", "reasons", "units", "rounds")})
        tmp.replace(path)
    return corpus


def encoder_inputs(puzzles: np.ndarray, solutions: np.ndarray) -> dict[str, torch.Tensor]:
    """``given`` (B, n*n) 1 where the puzzle gives the cell, ``digit`` (B, n*n) the solution's digits."""
    return {"given": torch.as_tensor(np.asarray(puzzles) > 0, dtype=torch.long),
            "digit": torch.as_tensor(np.asarray(solutions), dtype=torch.long)}


def slot_cells(corpus: Corpus, idx: np.ndarray) -> torch.Tensor:
    """(B, S) cell index of each slot, -1 for padding slots, trimmed to the batch's widest."""
    cells = corpus.cells[idx]
    width = max(1, int((cells >= 0).sum(1).max()))
    return torch.as_tensor(cells[:, :width])


def _variant(rng: np.random.Generator, pl: Placement) -> int:
    return int(rng.integers(len(PHRASES[phrase_group(pl.reason)])))


def nat_batch(corpus: Corpus, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Inputs and (B, S, SLOT_LEN) slot targets of puzzles ``idx``, phrasings drawn from ``rng``."""
    cells = slot_cells(corpus, idx)
    target = torch.full((*cells.shape, SLOT_LEN), PAD_ID, dtype=torch.long)
    for b, i in enumerate(idx):
        for j, pl in enumerate(corpus.placements(int(i))):
            ids = encode_slot(pl, _variant(rng, pl))
            target[b, j, :len(ids)] = torch.as_tensor(ids)
    return {**encoder_inputs(corpus.puzzles[idx], corpus.solutions[idx]), "cells": cells, "target": target}


def ar_batch(corpus: Corpus, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Inputs and (B, T) flat targets for the autoregressive baseline: each slot's tokens then
    ``<sep>``, padded with ``<pad>``; ``slot`` (B, T) the slot each target token belongs to and
    ``pos`` (B, T) its position within the slot."""
    cells = slot_cells(corpus, idx)
    seqs = []
    for i in idx:
        seq = []
        for j, pl in enumerate(corpus.placements(int(i))):
            ids = encode_slot(pl, _variant(rng, pl)) + [SEP_ID]
            seq.extend((t, j, k) for k, t in enumerate(ids))
        seqs.append(seq)
    T = max(len(s) for s in seqs)
    out = {k: torch.zeros((len(idx), T), dtype=torch.long) for k in ("target", "slot", "pos")}
    out["target"].fill_(PAD_ID)
    for b, seq in enumerate(seqs):
        arr = torch.as_tensor(seq, dtype=torch.long).reshape(-1, 3)
        out["target"][b, :len(seq)], out["slot"][b, :len(seq)], out["pos"][b, :len(seq)] = arr.T
    return {**encoder_inputs(corpus.puzzles[idx], corpus.solutions[idx]), "cells": cells, **out}
