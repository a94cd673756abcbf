"""``sage demo [NAME]``: pipelines from ``examples/pipelines`` run end to end, with pictures.

Every demo takes ``--out DIR`` (where its pictures go; it prints their paths) and ``--seed``
(which held-out inputs), and names the extra to install when an optional part is missing,
in one line. ``sage demo --list`` shows them. Built in:

- ``visual-sudoku`` (the default): a held-out photo-like Sudoku picture read by vision, solved by
  the HRM with the cells in conflict fed back to the reader, explained in checked text by
  language; checkpointed midway and resumed like ``sudoku-text``; an annotated PNG and the plot.
- ``sudoku-text``: held-out Sudoku grids solved by the HRM through the
  orchestrator, the session checkpointed midway, finished by ``sage resume`` in a fresh process
  and checked bit-identical to an uninterrupted run; an energy-per-step plot of every node.
- ``toy``: the same with a small pipeline of toy plugins.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click

from sage_core import get_registry
from sage_core.testing import assert_trees_equal

from ._orchestrator import Orchestrator, Result
from ._pipeline import Pipeline
from .cli import open_store, plot_session

#: Where the demo pipelines live: ``examples/pipelines`` of the source checkout.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "pipelines"
DEFAULT_DEMO = "visual-sudoku"


@attrs.frozen(slots=True)
class DemoRun:
    """What a demo is given: its pipeline spec, where pictures go, the seed, its options."""

    spec: dict[str, Any]
    out: Path
    seed: int | None
    options: dict[str, Any]


@attrs.frozen(slots=True)
class Demo:
    """A named demo: its TOML under ``examples/pipelines``, the modules (with the extra that
    brings them) and plugins it needs, and the function that runs it."""

    name: str
    summary: str
    pipeline: str
    run: Callable[[DemoRun], None]
    needs: tuple[tuple[str, str], ...] = ()
    plugins: tuple[str, ...] = ()


DEMOS: dict[str, Demo] = {}


def register_demo(demo: Demo) -> Demo:
    """Make ``demo`` available as ``sage demo NAME``."""
    DEMOS[demo.name] = demo
    return demo


def missing_part(demo: Demo) -> str | None:
    """One line naming what ``demo`` lacks (an extra's module or a plugin), or None."""
    for module, extra in demo.needs:
        if importlib.util.find_spec(module) is None:
            return f"sage demo {demo.name} needs {module}: pip install 'sage-irp[{extra}]'"
    registered = set(get_registry().plugins)
    for plugin in demo.plugins:
        if plugin not in registered:
            return (f"sage demo {demo.name} needs the {plugin!r} plugin, which is not registered "
                    f"(`sage plugins` lists the registered ones and why any failed to load)")
    return None


def read_spec(file: str) -> dict[str, Any]:
    """The dict form of ``examples/pipelines/FILE``; a clear error outside a source checkout."""
    path = EXAMPLES / file
    if not path.is_file():
        raise click.ClickException(f"demo pipeline {path} not found: the demos run from a source checkout "
                                   "(git clone, then `make demo`)")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def with_input(spec: dict[str, Any], node: str, value: Any) -> dict[str, Any]:
    """A copy of the pipeline ``spec`` whose node ``node`` takes ``value`` as its input."""
    return {**spec, "nodes": {**spec["nodes"], node: {**spec["nodes"][node], "input": value}}}


def node_reason(node: Any) -> str:
    """Why a node ended, in one line: its fault's first line (or kind), else its halt reason."""
    if node.fault is not None:
        return node.fault.detail.splitlines()[0] if node.fault.detail else node.fault.kind
    return node.reason


# -- checkpoint midway, resume in a fresh process, compare ------------------------------------
def _resume_in_fresh_process(store_root: Path, session: str) -> dict[str, Any]:
    """``sage resume SESSION --json`` in a new interpreter; returns its JSON result."""
    command = [sys.executable, "-c", "from sage_core.cli import main; main()", "resume", session,
               "--store", str(store_root), "--json"]
    # the same torch thread count as this process: float sums differ with the number of threads,
    # and bit-identity is claimed for the same configuration
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise click.ClickException(f"resume in a fresh process failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def run_resumed(spec: dict[str, Any], store_root: Path, show: Callable[..., None]) -> tuple[Result, Any]:
    """Reference run, then start + checkpoint midway + resume in a fresh process; compare the
    states and energies of every node; returns the reference result and the final snapshot."""
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
    _resume_in_fresh_process(store_root, session)
    snapshot = store.load(session)
    for name, node in reference.nodes.items():
        saved = snapshot.orchestrator["nodes"][name]
        if list(saved["energies"]) != list(node.energies):
            raise click.ClickException(f"node {name}: energies after resume differ from the uninterrupted run")
        entry = spec["nodes"][name]
        plugin = get_registry().create(entry["plugin"], **entry.get("config", {}))
        state = plugin.import_state(snapshot.nodes[name].tensors, snapshot.nodes[name].meta)
        try:
            assert_trees_equal(plugin.export_state(node.state.evolve(energy=None)),
                               plugin.export_state(state.evolve(energy=None)), f"node {name} state")
        except AssertionError as exc:
            raise click.ClickException(f"{exc} after resume") from None
        show(name, node, state, plugin)
    click.echo(f"resumed session is bit-identical to the uninterrupted run "
               f"(states and energies of {len(reference.nodes)} nodes)")
    return reference, snapshot


def energy_plot(snapshot: Any, out: Path) -> None:
    """Write the energy-per-step plot of every node, or say which extra it needs."""
    if importlib.util.find_spec("matplotlib") is None:
        click.echo("no energy plot: pip install 'sage-irp[viz]'")
        return
    click.echo(f"energy per step of every node: {plot_session(snapshot.orchestrator, out / 'energy.png')}")


def _resumed_demo(run: DemoRun, spec: dict[str, Any], show: Callable[..., None]) -> Result:
    store_dir = run.options.get("store")
    with tempfile.TemporaryDirectory() as tmp:
        reference, snapshot = run_resumed(spec, Path(store_dir or tmp), show)
        energy_plot(snapshot, run.out)
    return reference


# -- the text demos -----------------------------------------------------------------------------
def _board(solution: Any) -> list[str]:
    if isinstance(solution, list) and solution and isinstance(solution[0], str):
        return list(solution)
    return [" ".join(str(int(v)) if int(v) else "." for v in row) for row in solution]


def _side_by_side(left: list[str], right: list[str], gap: str = "   ->   ") -> str:
    width = max(map(len, left))
    return "\n".join(f"{a:<{width}}{gap if i == len(left) // 2 else ' ' * len(gap)}{b}"
                     for i, (a, b) in enumerate(zip(left, right)))


def puzzle_nodes(template: dict[str, Any], puzzles: list[Any], mode: str | None) -> dict[str, Any]:
    """The spec with its one node copied per puzzle (``puzzle0``, ...), each with its input and
    seed, 64 ATP per puzzle unless the file sets a budget."""
    (name, node), = template["nodes"].items()
    config = {**node.get("config", {}), **({"mode": mode} if mode else {})}
    nodes = {f"{name}{i}": {**node, "config": config, "input": puzzle, "seed": i} for i, puzzle in enumerate(puzzles)}
    head = {"budget": 64 * len(puzzles), **template.get("pipeline", {})}
    return {**template, "pipeline": head, "nodes": nodes}


def sudoku_text(run: DemoRun) -> None:
    task, n, mode = run.options["task"], run.options["n"], run.options["mode"]
    hrm = get_registry().plugin_class("hrm")
    seed = 9001 if run.seed is None else run.seed
    puzzles = hrm.held_out_puzzles(task, n, seed=seed)
    spec = puzzle_nodes(run.spec, puzzles, mode)
    click.echo(f"{n} held-out {task} puzzles (seed {seed}, never used in training), HRM mode {mode!r}\n")

    def show(name: str, node: Any, state: Any, plugin: Any) -> None:
        energies = " ".join(f"{e:.2f}" for e in node.energies)
        click.echo(f"{name}: {node.decision.reason}\n  energy per segment: {energies}")
        click.echo(_side_by_side(_board(spec["nodes"][name]["input"]), _board(plugin.solution(state))) + "\n")

    reference = _resumed_demo(run, spec, show)
    solved = sum(1 for node in reference.nodes.values() if node.energy is not None and node.energy < 1.0)
    click.echo(f"verified: {solved}/{len(reference.nodes)} puzzles")


def toy(run: DemoRun) -> None:
    spec = run.spec
    if run.seed is not None:
        spec = {**spec, "nodes": {name: {**node, "seed": run.seed + i}
                                  for i, (name, node) in enumerate(spec["nodes"].items())}}

    def show(name: str, node: Any, state: Any, plugin: Any) -> None:
        click.echo(f"{name}: {node.steps} steps, energy {node.energy:.3g} ({node.decision.policy})")

    _resumed_demo(run, spec, show)


# -- the visual puzzle solver ---------------------------------------------------------------------
def write_image(image: Any, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def annotate(image_path: Path, puzzle: Any, solution: Any, centres: Any, cell: float, out: Path) -> Path:
    """The image in colour with each solution digit drawn into its blank cell (blue), as a PNG."""
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.open(image_path).convert("RGB")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(8.0, 0.6 * cell))
    for r, row in enumerate(puzzle):
        for c, given in enumerate(row):
            if not given:
                x, y = (float(v) for v in centres[r][c])
                draw.text((x, y), str(int(solution[r][c])), fill=(20, 70, 220), font=font, anchor="mm")
    picture.save(out)
    return out


def _explanation(node: Any, plugin: Any) -> None:
    """The explainer's text, each claim marked as checked, or one line saying why there is none."""
    if node.fault is not None:
        click.echo(f"explanation: none ({node.fault.kind}: {node_reason(node)})")
        return
    claims = plugin.checked_claims(node.state)
    true = sum(ok for _, ok in claims)
    click.echo(f"explanation ({node.reason}): {true}/{len(claims)} claims checked true")
    for text, ok in claims:
        click.echo(f"  [{'checked' if ok else 'FALSE'}] {text}")


def visual_sudoku(run: DemoRun) -> None:
    registry = get_registry()
    hrm, vision = registry.plugin_class("hrm"), registry.plugin_class("vision")
    seed = 0 if run.seed is None else run.seed
    if seed < 0:
        raise click.ClickException(f"--seed must be >= 0 (it picks the held-out puzzle and its picture), got {seed}")
    truth = hrm.held_out_puzzles("sudoku6", 1, seed=9001 + seed)[0]
    picture = write_image(vision.render_held_out(truth, seed), run.out / "puzzle.png")
    click.echo(f"held-out 6x6 Sudoku (seed {seed}) rendered in a font training never saw, with noise, "
               f"blur, a turn and perspective: {picture}\n")
    spec = with_input(run.spec, "reader", str(picture.resolve()))

    def show(name: str, node: Any, state: Any, plugin: Any) -> None:
        click.echo(f"{name} ({node.plugin}): {node.steps} steps, {node.reason}")

    reference = _resumed_demo(run, spec, show)
    nodes = reference.nodes
    registered = {name: registry.create(entry["plugin"], **entry.get("config", {}))
                  for name, entry in spec["nodes"].items()}
    reader, solver = nodes["reader"].state, nodes["solver"].state
    reading = registered["reader"].output(reader)
    right = sum(a == b for ra, rb in zip(reading, truth) for a, b in zip(ra, rb))
    click.echo(f"\nreading: {right}/{len(truth) ** 2} cells as drawn, {reader.meta['feedback']} re-read(s) "
               f"from the solver's conflicts")
    solved = registered["solver"].output(solver) if solver is not None else None
    if solved is None or nodes["solver"].fault is not None:
        click.echo(_side_by_side(_board(reading), _board(truth), "   drawn:  "))
        raise click.ClickException(f"the solver failed: {nodes['solver'].reason}")
    click.echo(_side_by_side(_board(solved["puzzle"]), _board(solved["solution"])))
    click.echo(f"solution: {'verified' if solved['verified'] else 'NOT verified'} ({nodes['solver'].reason})")
    _explanation(nodes["explainer"], registered["explainer"])
    centres, cell = vision.cell_centres(reader)
    annotated = annotate(picture, solved["puzzle"], solved["solution"], centres, cell, run.out / "solved.png")
    click.echo(f"annotated image: {annotated}")


register_demo(Demo("visual-sudoku", "a photo-like held-out Sudoku image read (vision), solved with feedback to the "
                   "reader (hrm) and explained in checked text (language)", "visual_sudoku.toml", visual_sudoku,
                   needs=(("PIL", "viz"), ("matplotlib", "viz")), plugins=("vision", "hrm", "language")))
register_demo(Demo("sudoku-text", "held-out Sudoku grids solved by the HRM, checkpointed midway, resumed "
                   "bit-identically in a fresh process", "sudoku_text.toml", sudoku_text, plugins=("hrm",)))
register_demo(Demo("toy", "the same with three toy nodes", "toy_demo.toml", toy, plugins=("toy",)))


# -- the command ----------------------------------------------------------------------------------
@click.command("demo")
@click.argument("name", required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the pictures go (default: ./sage-demo/NAME).")
@click.option("--seed", type=int, default=None, help="Seed of the held-out inputs (default: each demo's own).")
@click.option("--list", "listing", is_flag=True, help="List the demos.")
@click.option("--task", default="sudoku6", show_default=True, help="sudoku-text: HRM task whose checkpoint to use.")
@click.option("--n", "n", type=int, default=4, show_default=True, help="sudoku-text: number of held-out puzzles.")
@click.option("--mode", type=click.Choice(["bare", "irp"]), default="irp", show_default=True,
              help="sudoku-text: the model alone, or with IRP refinement.")
@click.option("--toy", "toy_flag", is_flag=True, help="Same as `sage demo toy`.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo session here (default: a temporary directory).")
def demo_command(name: str | None, out: Path | None, seed: int | None, listing: bool, task: str, n: int, mode: str,
                 toy_flag: bool, store_dir: Path | None) -> None:
    """Run a demo pipeline end to end (default: visual-sudoku); `--list` shows them all."""
    if listing:
        for demo in DEMOS.values():
            click.echo(f"{demo.name:12} {demo.summary} (examples/pipelines/{demo.pipeline})")
        return
    name = name or ("toy" if toy_flag else DEFAULT_DEMO)
    demo = DEMOS.get(name)
    if demo is None:
        raise click.ClickException(f"no demo {name!r}; the demos are {', '.join(DEMOS)}")
    problem = missing_part(demo)
    if problem:
        raise click.ClickException(problem)
    t0 = time.perf_counter()
    out = out or Path("sage-demo") / name
    out.mkdir(parents=True, exist_ok=True)
    demo.run(DemoRun(read_spec(demo.pipeline), out, seed,
                     {"task": task, "n": n, "mode": mode, "store": store_dir}))
    click.echo(f"pictures in {out}/ ({time.perf_counter() - t0:.1f} s)")
from . import demo_robot  # noqa: E402,F401  (registers `sage demo robot`)
from . import demo_throw  # noqa: E402,F401  (registers `sage demo throw`)
