"""Task registry: token encodings, generation with disjoint splits, augmentation, verification.

Every task exposes flat token sequences: ``inputs`` (N, L) int64 with values < ``vocab``,
``labels`` (N, L) int64 with values < ``n_classes``. Splits are disjoint *by construction*:
a puzzle belongs to the test split iff a hash of its input tokens falls in the test bucket, so
no training sample (augmented or not) can equal any test puzzle, for any seeds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from plugins.puzzles import maze, sudoku

SPLITS = {"train": 0, "test": 1}
TEST_BUCKETS = 4  # 1 in 4 puzzle hashes is reserved for the test split


def puzzle_key(tokens: np.ndarray) -> bytes:
    return hashlib.blake2b(np.asarray(tokens, dtype=np.int8).tobytes(), digest_size=8).digest()


def is_test_puzzle(tokens: np.ndarray) -> bool:
    return puzzle_key(tokens)[0] % TEST_BUCKETS == 0


@dataclass(frozen=True)
class Distribution:
    """Which puzzles a task draws, beyond its default: Sudoku ``blanks`` (lo, hi) and whether
    the solution must be ``unique``; mazes with S and G on any open cells (``sg_anywhere``),
    optionally at an S-G distance in moves within ``sg_distance`` (lo, hi). The default
    instance is the task's own distribution (the shipped models' training data)."""

    blanks: tuple[int, int] | None = None
    unique: bool = True
    sg_anywhere: bool = False
    sg_distance: tuple[int, int] | None = None

    def seed_words(self) -> tuple[int, ...]:
        """Extra seed words so each non-default distribution draws its own puzzles (none for the
        default, so the default data sets hash as they always have)."""
        if self == Distribution():
            return ()
        b = self.blanks or (0, 0)
        d = self.sg_distance or (0, 0)
        return (1, *b, int(self.unique), int(self.sg_anywhere), *d)

    @classmethod
    def from_dict(cls, d: dict) -> "Distribution":
        """From a JSON-able dict (a training recipe's ``data`` entry); unknown keys are an error."""
        unknown = set(d) - {"blanks", "unique", "sg_anywhere", "sg_distance"}
        if unknown:
            raise ValueError(f"unknown data distribution keys {sorted(unknown)}")
        tup = lambda v: None if v is None else (int(v[0]), int(v[1]))  # noqa: E731
        return cls(blanks=tup(d.get("blanks")), unique=bool(d.get("unique", True)),
                   sg_anywhere=bool(d.get("sg_anywhere", False)), sg_distance=tup(d.get("sg_distance")))


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "sudoku" or "maze"
    size: int  # grid side

    @property
    def seq_len(self) -> int:
        return self.size * self.size

    @property
    def vocab(self) -> int:
        return self.size + 1 if self.kind == "sudoku" else 4

    @property
    def n_classes(self) -> int:
        return self.size if self.kind == "sudoku" else 3

    # --- generation -------------------------------------------------------------------
    def make_one(self, rng: np.random.Generator, dist: Distribution | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One (input tokens, label tokens) pair, flat, drawn from ``dist`` (default: the
        task's own distribution: unique Sudoku with the size's blanks, mazes with S/G on cell
        centres)."""
        dist = dist or Distribution()
        if self.kind == "sudoku":
            blanks = None if dist.blanks is None else int(rng.integers(dist.blanks[0], dist.blanks[1] + 1))
            p, s = sudoku.make_puzzle(self.size, rng, blanks=blanks, unique=dist.unique)
            return p.reshape(-1), (s - 1).reshape(-1)
        x, y = maze.make_puzzle(self.size, rng, anywhere=dist.sg_anywhere or dist.sg_distance is not None,
                                distance=dist.sg_distance)
        return x.reshape(-1), y.reshape(-1)

    def generate(self, n: int, seed: int, split: str = "train",
                 dist: Distribution | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct puzzles of ``split``, deterministic in (task, n, seed, split, dist)."""
        want_test = SPLITS[split] == 1
        rng = np.random.default_rng([seed, SPLITS[split], sum(map(ord, self.name)), *(dist.seed_words() if dist else ())])
        xs, ys, seen = [], [], set()
        while len(xs) < n:
            x, y = self.make_one(rng, dist)
            key = puzzle_key(x)
            if (key[0] % TEST_BUCKETS == 0) != want_test or key in seen:
                continue
            seen.add(key)
            xs.append(x)
            ys.append(y)
        return np.stack(xs).astype(np.int64), np.stack(ys).astype(np.int64)

    # --- symmetry -----------------------------------------------------------------------
    def _mod(self):
        return sudoku if self.kind == "sudoku" else maze

    def random_symmetry(self, rng: np.random.Generator) -> dict:
        return self._mod().random_symmetry(self.size, rng)

    def apply_symmetry(self, tokens: np.ndarray, sym: dict, label: bool = False) -> np.ndarray:
        """Apply ``sym`` to flat token arrays (..., L); labels of sudoku are digit-1."""
        t = np.asarray(tokens)
        g = t.reshape(*t.shape[:-1], self.size, self.size)
        if self.kind == "sudoku" and label:
            g = self._mod().apply_symmetry(g + 1, sym) - 1
        else:
            g = self._mod().apply_symmetry(g, sym)
        return np.ascontiguousarray(g).reshape(t.shape)

    def invert_symmetry(self, tokens: np.ndarray, sym: dict, label: bool = False) -> np.ndarray:
        t = np.asarray(tokens)
        g = t.reshape(*t.shape[:-1], self.size, self.size)
        if self.kind == "sudoku" and label:
            g = self._mod().invert_symmetry(g + 1, sym) - 1
        else:
            g = self._mod().invert_symmetry(g, sym)
        return np.ascontiguousarray(g).reshape(t.shape)

    def augment(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random symmetry per sample, redrawn when the image is a test puzzle (kept as is after 4 tries)."""
        xo, yo = x.copy(), y.copy()
        for i in range(len(x)):
            for _ in range(4):
                sym = self.random_symmetry(rng)
                xa = self.apply_symmetry(x[i], sym)
                if not is_test_puzzle(xa):
                    xo[i] = xa
                    yo[i] = self.apply_symmetry(y[i], sym, label=True)
                    break
        return xo, yo

    # --- verification -------------------------------------------------------------------
    def violations(self, pred: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Violated constraints per sample for predicted labels ``pred`` (B, L) given inputs ``x``."""
        pred = np.asarray(pred)
        x = np.asarray(x)
        shape = (len(x), self.size, self.size)
        if self.kind == "sudoku":
            return sudoku.violations_batch(pred.reshape(shape) + 1, x.reshape(shape))
        return maze.violations_batch(pred.reshape(shape), x.reshape(shape))

    def project(self, pred: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Hard constraints on predicted labels: sudoku givens fixed; maze walls stay walls."""
        pred = np.array(pred, copy=True)
        x = np.asarray(x)
        if self.kind == "sudoku":
            given = x > 0
            pred[given] = x[given] - 1
        else:
            pred[x == maze.WALL] = maze.WALL
            pred[(x == maze.START) | (x == maze.GOAL)] = maze.PATH
            pred[(x == maze.OPEN) & (pred == maze.WALL)] = maze.OPEN
        return pred


TASKS = {
    "sudoku4": Task("sudoku4", "sudoku", 4),
    "sudoku6": Task("sudoku6", "sudoku", 6),
    "sudoku9": Task("sudoku9", "sudoku", 9),
    "maze11": Task("maze11", "maze", 11),
    "maze13": Task("maze13", "maze", 13),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: expected one of {sorted(TASKS)}")
    return TASKS[name]
