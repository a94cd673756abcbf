"""Measuring the reader on held-out images (evaluation fonts and seed): per stage (encoder alone,
after latent refinement, after solver feedback) the accuracy on digit cells (S and G for mazes)
and on blank cells (open and wall for mazes), the share of grids read exactly, and ms per grid
(wall clock, and the process's CPU time: the time on an idle core when torch uses one thread).
``solve`` adds the end-to-end figure through the HRM, reached through the plugin registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from plugins.puzzles import maze, sudoku

from . import data
from .feedback import sudoku_conflicts
from .model import MAZE_BASE
from .plugin import VisionReader

STAGES = ("encoder", "refined", "feedback")
CASES = (("sudoku", 4), ("sudoku", 6), ("sudoku", 9), ("maze", 11))


def solver_conflicts(grid: Any) -> np.ndarray | None:
    """What a Sudoku solver reports about a reading: cells whose digit repeats in a unit, or every
    given when nothing repeats but the givens have no solution; None when the reading is solvable."""
    g = np.asarray(grid)
    clash = sudoku_conflicts(g)
    if clash.any():
        return clash
    return None if sudoku.has_solution(g) else g > 0


def _classes(reading: Any, kind: str) -> np.ndarray:
    """Flat classes of a reading; a maze reading need not be a valid maze (a misread S or G is a
    misread, not an image the reader failed to locate)."""
    if kind == "sudoku":
        return data.labels(reading, kind)
    return np.array([maze.CHARS[ch] + MAZE_BASE for row in reading for ch in row], dtype=np.int64)


def read_stages(reader: VisionReader, image: np.ndarray
                ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float], str, int]:
    """Classes per stage, cumulative wall and CPU seconds per stage, detected kind and size."""
    t0, c0 = time.perf_counter(), time.process_time()
    state = reader.init_state(image, {})
    kind, size = state.meta["kind"], state.meta["size"]
    out = {"encoder": _classes(state.meta["reading"], kind)}
    times = {"encoder": time.perf_counter() - t0}
    cpu = {"encoder": time.process_time() - c0}
    while reader.halt_state(state) is None:
        state = reader.step(state)
    out["refined"] = _classes(state.meta["reading"], kind)
    times["refined"] = time.perf_counter() - t0
    cpu["refined"] = time.process_time() - c0
    if kind == "sudoku":
        flagged = solver_conflicts(state.meta["reading"])
        if flagged is not None:
            state = reader.receive(state, "cell_conflicts", flagged)
    out["feedback"] = _classes(state.meta["reading"], kind)
    times["feedback"] = time.perf_counter() - t0
    cpu["feedback"] = time.process_time() - c0
    return out, times, cpu, kind, size


def evaluate(levels: Iterable[str] = ("mild",), cases: Iterable[tuple[str, int]] = CASES, n: int = 200,
             checkpoint: str | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Figures per level and case (see the module docstring)."""
    reader = VisionReader(checkpoint=checkpoint)
    results: dict[str, Any] = {}
    for level in levels:
        for kind, size in cases:
            tallies = {s: {"digit": [0, 0], "blank": [0, 0], "exact": 0, "seconds": 0.0, "cpu": 0.0} for s in STAGES}
            misfound = 0
            for sample in data.eval_samples(kind, size, level, n):
                truth = data.labels(sample.grid, kind)
                digit = truth > 0 if kind == "sudoku" else truth >= MAZE_BASE + 2
                try:
                    got, times, cpu, k, s = read_stages(reader, sample.image)
                except ValueError:
                    got, times, cpu, k, s = {}, {st: 0.0 for st in STAGES}, {st: 0.0 for st in STAGES}, None, None
                if (k, s) != (kind, size):
                    misfound += 1
                for st in STAGES:
                    t = tallies[st]
                    t["seconds"] += times[st]
                    t["cpu"] += cpu[st]
                    ok = got[st] == truth if (k, s) == (kind, size) else np.zeros_like(truth, dtype=bool)
                    t["digit"][0] += int(ok[digit].sum())
                    t["digit"][1] += int(digit.sum())
                    t["blank"][0] += int(ok[~digit].sum())
                    t["blank"][1] += int((~digit).sum())
                    t["exact"] += int(ok.all())
            key = f"{level}/{kind}{size}"
            results[key] = {"n": n, "not_found": misfound, **{st: {
                "digit_acc": t["digit"][0] / max(t["digit"][1], 1), "blank_acc": t["blank"][0] / max(t["blank"][1], 1),
                "exact": t["exact"] / n, "ms_per_grid": 1000 * t["seconds"] / n,
                "cpu_ms_per_grid": 1000 * t["cpu"] / n} for st, t in tallies.items()}}
            if progress:
                progress(f"{key}: " + ", ".join(f"{st} exact {results[key][st]['exact']:.3f}" for st in STAGES))
    return results


def solve_end_to_end(n: int = 200, level: str = "mild", size: int = 6, checkpoint: str | None = None) -> dict[str, Any]:
    """Share of held-out Sudoku images solved by vision -> HRM (found through ``sage_core``'s
    registry), with the HRM's complaint fed back to the reader once when it refuses the givens
    or fails to verify."""
    from sage_core import MaxSteps, get_registry, refine

    registry = get_registry()
    hrm_cls = registry.plugin_class("hrm")
    hrm = hrm_cls()
    reader = VisionReader(checkpoint=checkpoint)
    solved = fed_back = 0
    t0 = time.perf_counter()
    for sample in data.eval_samples("sudoku", size, level, n):
        truth = np.asarray(sample.grid)
        try:
            state = reader.init_state(sample.image, {"kind": "sudoku", "size": size})
        except ValueError:
            continue
        while reader.halt_state(state) is None:
            state = reader.step(state)
        answer = None
        for attempt in range(2):
            grid = reader.reading(state)
            try:
                result = refine(hrm, grid, {"seed": 0}, policy=MaxSteps(64))
                answer = np.asarray(hrm_cls.solution(result.state))
                verified = result.state.meta.get("best_violations", 1) == 0
            except ValueError:  # the HRM refuses givens that conflict or have no solution
                verified = False
            if verified or attempt == 1:
                break
            flagged = solver_conflicts(grid)
            if flagged is None:
                break
            state = reader.receive(state, "cell_conflicts", flagged)
            fed_back += 1
        if answer is not None and sudoku.is_valid_solution(answer) and np.all((truth == 0) | (answer == truth)):
            solved += 1
    return {"n": n, "level": level, "size": size, "solved": solved / n, "fed_back": fed_back,
            "ms_per_grid": 1000 * (time.perf_counter() - t0) / n}
