"""``sage demo``: held-out puzzles solved by the HRM plugin through the orchestrator, the session
checkpointed midway and finished by ``sage resume`` in a fresh process, then checked against an
uninterrupted run. ``--toy`` runs a small pipeline of toy plugins the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from sage_core import get_registry
from sage_core.testing import assert_trees_equal

from ._orchestrator import Orchestrator, Result
from ._pipeline import Pipeline
from .cli import open_store

TOY_PIPELINE = {
    "pipeline": {"name": "toy-demo", "budget": 400},
    "nodes": {
        "coarse": {"plugin": "toy", "config": {"dim": 8, "lr": 0.05}, "halt": {"max_steps": 60}},
        "fine": {"plugin": "toy", "config": {"dim": 8, "lr": 0.15, "noise": 1e-4}, "seed": 7,
                 "halt": {"threshold": 1e-6, "plateau": {"eps": 1e-9, "window": 8}, "max_steps": 400}},
        "side": {"plugin": "toy", "config": {"dim": 16, "lr": 0.1, "problem_seed": 3},
                 "halt": {"threshold": 1e-8, "max_steps": 400}},
    },
    "edges": [{"from": "coarse", "to": "fine", "bridge": "identity"}],
}


def hrm_pipeline(task: str, puzzles: list[Any], mode: str) -> dict[str, Any]:
    """One HRM node per puzzle, each halting when verified, on ACT or at its segment limit."""
    nodes = {f"puzzle{i}": {"plugin": "hrm", "input": puzzle, "seed": i,
                            "config": {"mode": mode}, "halt": {"max_steps": 64}}
             for i, puzzle in enumerate(puzzles)}
    return {"pipeline": {"name": f"hrm-{task}-demo", "budget": 64 * len(puzzles)}, "nodes": nodes, "edges": []}


def _board(solution: Any) -> list[str]:
    if isinstance(solution, list) and solution and isinstance(solution[0], str):
        return list(solution)
    return [" ".join(str(int(v)) if int(v) else "." for v in row) for row in solution]


def _side_by_side(left: list[str], right: list[str], gap: str = "   ->   ") -> str:
    width = max(map(len, left))
    return "\n".join(f"{a:<{width}}{gap if i == len(left) // 2 else ' ' * len(gap)}{b}"
                     for i, (a, b) in enumerate(zip(left, right)))


def _resume_in_fresh_process(store_root: Path, session: str) -> dict[str, Any]:
    """``sage resume SESSION --json`` in a new interpreter; returns its JSON result."""
    command = [sys.executable, "-c", "from sage_core.cli import main; main()", "resume", session,
               "--store", str(store_root), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    if done.returncode != 0:
        raise click.ClickException(f"resume in a fresh process failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def run_demo(spec: dict[str, Any], store_root: Path, show: Any) -> tuple[Result, dict[str, Any], Any]:
    """Reference run, then start + checkpoint midway + resume in a fresh process; compare."""
    reference = Orchestrator(Pipeline.from_dict(spec)).run()
    store = open_store(store_root)
    first = Orchestrator(Pipeline.from_dict(spec))
    session = first.start(store=store)
    total = sum(node.steps for node in reference.nodes.values())
    half = max(1, total // 2)
    while sum(run.history.steps for run in first.runs.values()) < half:
        first.step()
    number = first.checkpoint(store)
    taken = sum(run.history.steps for run in first.runs.values())
    first.close()
    click.echo(f"checkpoint {number} of session {session} after {taken} of {total} steps; "
               f"resuming with `sage resume` in a fresh process ...")
    resumed = _resume_in_fresh_process(store_root, session)
    snapshot = store.load(session)
    for name, node in reference.nodes.items():
        saved = snapshot.orchestrator["nodes"][name]
        if list(saved["energies"]) != list(node.energies):
            raise click.ClickException(f"node {name}: energies after resume differ from the uninterrupted run")
        plugin = get_registry().create(spec["nodes"][name]["plugin"], **spec["nodes"][name].get("config", {}))
        state = plugin.import_state(snapshot.nodes[name].tensors, snapshot.nodes[name].meta)
        try:
            assert_trees_equal(plugin.export_state(node.state.evolve(energy=None)),
                               plugin.export_state(state.evolve(energy=None)), f"node {name} state")
        except AssertionError as exc:
            raise click.ClickException(f"{exc} after resume") from None
        show(name, node, state, plugin)
    return reference, resumed, snapshot


@click.command("demo")
@click.option("--task", default="sudoku6", show_default=True, help="HRM task whose shipped checkpoint to use.")
@click.option("--n", "n", type=int, default=4, show_default=True, help="number of held-out puzzles")
@click.option("--mode", type=click.Choice(["bare", "irp"]), default="irp", show_default=True)
@click.option("--toy", is_flag=True, help="Run the toy-plugin pipeline instead of the HRM.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo session here (default: a temporary directory).")
def demo_command(task: str, n: int, mode: str, toy: bool, store_dir: Path | None) -> None:
    """Solve held-out puzzles with the HRM through the orchestrator; checkpoint midway, resume in a
    fresh process, and check the result is bit-identical to an uninterrupted run."""
    t0 = time.perf_counter()
    if toy:
        spec = TOY_PIPELINE

        def show(name: str, node: Any, state: Any, plugin: Any) -> None:
            click.echo(f"{name}: {node.steps} steps, energy {node.energy:.3g} ({node.decision.policy})")
    else:
        hrm = get_registry().plugin_class("hrm")
        puzzles = hrm.held_out_puzzles(task, n)
        spec = hrm_pipeline(task, puzzles, mode)
        click.echo(f"{n} held-out {task} puzzles (seed never used in training), HRM mode {mode!r}\n")

        def show(name: str, node: Any, state: Any, plugin: Any) -> None:
            puzzle = spec["nodes"][name]["input"]
            energies = " ".join(f"{e:.2f}" for e in node.energies)
            click.echo(f"{name}: {node.decision.reason}\n  energy per segment: {energies}")
            click.echo(_side_by_side(_board(puzzle), _board(plugin.solution(state))) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        root = store_dir or Path(tmp)
        reference, resumed, _ = run_demo(spec, root, show)
    solved = sum(1 for node in reference.nodes.values() if node.energy is not None and node.energy < 1.0)
    if not toy:
        click.echo(f"verified: {solved}/{len(reference.nodes)} puzzles")
    click.echo(f"resumed session is bit-identical to the uninterrupted run "
               f"(states and energies of {len(reference.nodes)} nodes; {time.perf_counter() - t0:.1f} s)")
