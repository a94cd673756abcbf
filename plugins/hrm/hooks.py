"""pluggy hooks of the hrm plugin: registers HRMReasoner, its LLM tools (solve_sudoku, solve_maze)
and the ``sage data/train/eval`` commands.

Entry point (pyproject): ``[project.entry-points.sage] hrm = "plugins.hrm.hooks"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sage_core import hookimpl
from sage_core.cli import command_group

from .plugin import HRMReasoner
from .tasks import TASKS
from .train import RECIPES


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(HRMReasoner)


@hookimpl
def sage_register_tools(register: Any) -> None:
    from .tools import TOOLS

    for tool in TOOLS:
        register(tool)


@click.command("make")
@click.option("--task", type=click.Choice(sorted(TASKS)), required=True)
@click.option("--n", "n", type=int, default=1000, show_default=True, help="number of puzzles")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def data_make(task: str, n: int, seed: int, split: str, out: Path) -> None:
    """Generate puzzles: DIR/{split}_inputs.npy, {split}_labels.npy and {split}_meta.json."""
    import numpy as np

    from .tasks import get_task

    t = get_task(task)
    x, y = t.generate(n, seed, split)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{split}_inputs.npy", x, allow_pickle=False)
    np.save(out / f"{split}_labels.npy", y, allow_pickle=False)
    meta = {"task": task, "kind": t.kind, "size": t.size, "n": n, "seed": seed, "split": split,
            "seq_len": t.seq_len, "vocab": t.vocab, "n_classes": t.n_classes,
            "encoding": ("inputs: 0 blank, 1..n digits; labels: digit-1" if t.kind == "sudoku"
                         else "inputs: 0 wall, 1 open, 2 S, 3 G; labels: 0 wall, 1 open, 2 path")}
    (out / f"{split}_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    click.echo(f"wrote {n} {task} {split} puzzles to {out}")


@click.command("hrm")
@click.option("--task", type=click.Choice(sorted(set(TASKS) | set(RECIPES))), required=True,
              help="a task (its own recipe) or a named recipe such as maze11-any")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="run directory (resumes if present)")
@click.option("--minutes", type=float, default=None, help="training-time limit (default: the task's recipe)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", "model_json", default=None, help="JSON HRMConfig overrides, e.g. '{\"hidden\": 64}'")
@click.option("--n-train", type=int, default=None, help="training puzzles (default: the task's recipe)")
@click.option("--max-iters", type=int, default=None, help="stop at this iteration (exact reproduction)")
@click.option("--lr", type=float, default=None, help="peak learning rate (default: the task's recipe)")
@click.option("--batch-size", type=int, default=None, help="puzzles per iteration (default: the task's recipe)")
@click.option("--init", default=None,
              help="start from these weights (a shipped name or a checkpoint path) instead of the recipe's")
@click.option("--decay-iters", type=int, default=None, help="cosine lr decay ends at this iteration (0 = constant)")
@click.option("--decay-start", type=int, default=None, help="cosine lr decay starts at this iteration")
@click.option("--eval-every", type=int, default=None, help="validation eval (and best-checkpoint selection) period, iterations [500]")
@click.option("--eval-n", type=int, default=None, help="validation puzzles (seed 9002, never the test seed) [256]")
@click.option("--grad-clip", type=float, default=None, help="clip the gradient norm to this (0 = off)")
@click.option("--ema", type=float, default=None, help="decay of an EMA of the weights, evaluated and shipped (0 = off)")
@click.option("--device", default=None, help="torch device, e.g. cuda where an accelerator is lent [cpu]")
@click.option("--clock", type=click.Choice(["cpu", "wall"]), default=None,
              help="what --minutes counts: process CPU time (default) or wall time (accelerators)")
@click.option("--no-progress", is_flag=True, help="log lines instead of a progress bar")
def train_hrm(task: str, out: str, minutes: float | None, seed: int, model_json: str | None,
              n_train: int | None, max_iters: int | None, decay_iters: int | None,
              decay_start: int | None, no_progress: bool, eval_every: int | None = None,
              eval_n: int | None = None, lr: float | None = None, grad_clip: float | None = None,
              ema: float | None = None, device: str | None = None, clock: str | None = None,
              batch_size: int | None = None, init: str | None = None) -> None:
    """Train an HRM from scratch or from a recipe's starting weights (or resume the run in OUT);
    --minutes counts CPU time unless --clock wall."""
    from .train import Trainer, recipe

    kw = {k: v for k, v in {"n_train": n_train, "max_iters": max_iters, "decay_iters": decay_iters,
                                "decay_start": decay_start, "eval_every": eval_every, "eval_n": eval_n,
                                "lr": lr, "grad_clip": grad_clip, "ema": ema, "device": device,
                                "clock": clock, "batch_size": batch_size, "init": init}.items()
          if v is not None}
    args = recipe(task, out=out, seed=seed, minutes=minutes,
                  model=json.loads(model_json) if model_json else None, **kw)
    Trainer(args, log=click.echo).run(progress=not no_progress)


class _RangeParam(click.ParamType):
    """``LO-HI`` (inclusive) or ``LO-`` (no upper bound) as a pair of ints."""

    name = "LO-HI"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        lo, sep, hi = str(value).partition("-")
        try:
            pair = (int(lo), int(hi) if hi else 10**6)
        except ValueError:
            pair = None
        if not sep or pair is None or pair[0] > pair[1]:
            self.fail(f"expected LO-HI such as 27-30 (or LO- for no upper bound), got {value!r}", param, ctx)
        return pair


@click.command("hrm")
@click.option("--task", type=click.Choice(sorted(TASKS)), required=True)
@click.option("--checkpoint", default=None, help="checkpoint dir/file or shipped name (default: the task's)")
@click.option("--n", "n", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=None, help="held-out seed (default: the evaluation seed)")
@click.option("--no-irp", is_flag=True, help="skip the IRP refinement")
@click.option("--blanks", type=_RangeParam(), default=None,
              help="Sudoku slice: LO-HI blanks, several completions allowed (any valid one counts)")
@click.option("--sg-distance", type=_RangeParam(), default=None,
              help="maze slice: S and G on any open cells, LO-HI moves apart ('21-' = more than 20)")
@click.option("--json", "as_json", is_flag=True)
def eval_hrm(task: str, checkpoint: str | None, n: int, seed: int | None, no_irp: bool, as_json: bool,
             blanks: tuple[int, int] | None = None, sg_distance: tuple[int, int] | None = None) -> None:
    """Evaluate on held-out puzzles: bare model (ACT and always-max) and IRP refinement."""
    from .evaluate import run_eval

    try:
        r = run_eval(task, checkpoint=checkpoint, n=n, seed=seed, irp=not no_irp, blanks=blanks,
                     sg_distance=sg_distance)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(r))
        return
    for k, v in r.items():
        click.echo(f"{k:>20}: {v:.4f}" if isinstance(v, float) else f"{k:>20}: {v}")


@hookimpl
def sage_register_commands(cli: Any) -> None:
    command_group(cli, "data", "Generate datasets.").add_command(data_make)
    command_group(cli, "train", "Train models.").add_command(train_hrm)
    command_group(cli, "eval", "Evaluate models.").add_command(eval_hrm)
    from .export_cli import export_hrm

    command_group(cli, "export", "Export models to other runtimes.").add_command(export_hrm)
