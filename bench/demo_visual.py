"""Benchmark of ``sage demo`` (the visual puzzle solver): N held-out 6x6 Sudoku pictures per level
(evaluation fonts, evaluation seed), each read (vision), solved (hrm) and explained (language)
through examples/pipelines/visual_sudoku.toml, with and without its feedback edge.

Prints per level and variant: solved (the solver's verified answer completes the puzzle as drawn;
target mild >= 98 %, hard >= 90 %, and feedback must raise the hard rate), explanations entirely
true (every claim checked true, of the solved ones), re-reads from feedback, and seconds per
puzzle (wall, model loads excluded).

Run: ``nice .venv/bin/python bench/demo_visual.py [--n 200] [--level mild --level hard]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import Orchestrator, Pipeline  # noqa: E402
from orchestrator.demo import read_spec, with_input  # noqa: E402
from plugins.puzzles import sudoku  # noqa: E402
from plugins.vision import data  # noqa: E402
from sage_core import get_registry  # noqa: E402


def without_feedback(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline with its feedback edges removed (the reader's first reading is final)."""
    return {**spec, "edges": [e for e in spec["edges"] if not e.get("feedback")]}


def run_one(spec: dict[str, Any], image: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """One picture through the pipeline: solved, explanation entirely true, re-reads, seconds."""
    spec = with_input(spec, "reader", image)
    t0 = time.perf_counter()
    result = Orchestrator(Pipeline.from_dict(spec)).run()
    seconds = time.perf_counter() - t0
    registry = get_registry()
    solver, explainer = result.nodes["solver"], result.nodes["explainer"]
    solved = explained = False
    if solver.fault is None and solver.state is not None:
        out = registry.create("hrm", **spec["nodes"]["solver"].get("config", {})).output(solver.state)
        answer = np.asarray(out["solution"])
        solved = bool(out["verified"] and sudoku.is_valid_solution(answer)
                      and np.all((truth == 0) | (answer == truth)))
    if solved and explainer.fault is None and explainer.state is not None:
        claims = registry.create("language").checked_claims(explainer.state)
        explained = bool(claims) and all(ok for _, ok in claims)
    reader = result.nodes["reader"].state
    return {"solved": solved, "explained": explained, "seconds": seconds,
            "rereads": int(reader.meta.get("feedback", 0)) if reader is not None else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="pictures per level")
    parser.add_argument("--level", action="append", choices=["mild", "hard"], help="levels (default both)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = read_spec("visual_sudoku.toml")
    variants = {"with feedback": spec, "without feedback": without_feedback(spec)}
    print(f"visual solver: {args.n} held-out 6x6 pictures per level (evaluation fonts, seed {data.EVAL_SEED})")
    print(f"{'level':6} {'variant':17} {'solved':>8} {'explained':>10} {'re-reads':>9} {'s/puzzle':>9}")
    for level in args.level or ["mild", "hard"]:
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for sample in data.eval_samples("sudoku", 6, level, args.n):
            truth = np.asarray(sample.grid)
            for name, variant in variants.items():  # interleaved: load drift hits both alike
                rows[name].append(run_one(variant, sample.image, truth))
        for name, got in rows.items():
            solved = sum(r["solved"] for r in got)
            explained = sum(r["explained"] for r in got)
            print(f"{level:6} {name:17} {solved / len(got):8.1%} {explained / max(solved, 1):10.1%} "
                  f"{sum(r['rereads'] for r in got):9d} {statistics.mean(r['seconds'] for r in got):9.2f}")


if __name__ == "__main__":
    main()
