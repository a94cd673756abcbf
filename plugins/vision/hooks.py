"""pluggy hooks of the vision plugin: registers VisionReader and SceneReader, the ``cell_conflicts`` bridge, the LLM tool
``read_puzzle_image`` and the ``sage train/eval vision`` commands.

Entry point (pyproject): ``[project.entry-points.sage] vision = "plugins.vision.hooks"``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from sage_core import hookimpl
from sage_core.cli import command_group

from .conflicts import cell_conflicts
from .plugin import VisionReader
from .scene import SceneReader


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(VisionReader)
    register(SceneReader)


@hookimpl
def sage_register_bridges(register: Any) -> None:
    register(cell_conflicts, name=cell_conflicts.name)


@hookimpl
def sage_register_tools(register: Any) -> None:
    from .tools import TOOLS

    for tool in TOOLS:
        register(tool)


@click.command("vision")
@click.option("--out", default="runs/vision", show_default=True, help="run folder (resumes if present)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--grids", "n_grids", type=int, default=None, help="rendered training images [10000]")
@click.option("--epochs", type=int, default=None, help="training epochs [11]")
@click.option("--minutes", type=float, default=None, help="CPU-time limit, rendering included [30]")
@click.option("--workers", type=int, default=1, show_default=True, help="processes rendering the images (same cells)")
def train_vision(out: str, seed: int, n_grids: int | None, epochs: int | None, minutes: float | None, workers: int) -> None:
    """Train the cell model from scratch on CPU (one torch thread) on rendered training-font images."""
    from .train import TrainArgs, Trainer

    kw = {k: v for k, v in {"n_grids": n_grids, "epochs": epochs, "minutes": minutes}.items() if v is not None}
    Trainer(TrainArgs(out=out, seed=seed, workers=workers, **kw), log=click.echo).run()


@click.command("vision")
@click.option("--n", "n", type=int, default=200, show_default=True, help="images per level and case")
@click.option("--level", "levels", multiple=True, type=click.Choice(["clean", "mild", "hard"]),
              help="levels to measure (repeatable) [mild]")
@click.option("--checkpoint", default=None, help="a cell model .safetensors (default: the shipped one)")
@click.option("--solve", is_flag=True, help="also solve mild 6x6 images end to end through the HRM")
@click.option("--json", "as_json", is_flag=True)
def eval_vision(n: int, levels: tuple[str, ...], checkpoint: str | None, solve: bool, as_json: bool) -> None:
    """Read held-out images (evaluation fonts): encoder alone, refined, with solver feedback."""
    import torch

    from .evaluate import evaluate, solve_end_to_end

    torch.set_num_threads(1)
    log = None if as_json else click.echo
    result: dict[str, Any] = {"reading": evaluate(levels or ("mild",), n=n, checkpoint=checkpoint, progress=log)}
    if solve:
        result["solve"] = solve_end_to_end(n=n, checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, r in result["reading"].items():
        for stage in ("encoder", "refined", "feedback"):
            s = r[stage]
            click.echo(f"{key:>18} {stage:>8}: digits {s['digit_acc']:.4%}  blanks {s['blank_acc']:.4%}  "
                       f"exact {s['exact']:.1%}  {s['ms_per_grid']:.1f} ms/grid ({s['cpu_ms_per_grid']:.1f} CPU ms)")
    if solve:
        s = result["solve"]
        click.echo(f"solved end to end (mild {s['size']}x{s['size']}, vision -> hrm): {s['solved']:.1%} "
                   f"of {s['n']} ({s['fed_back']} fed back)")


@hookimpl
def sage_register_commands(cli: Any) -> None:
    command_group(cli, "train", "Train models.").add_command(train_vision)
    command_group(cli, "eval", "Evaluate models.").add_command(eval_vision)
