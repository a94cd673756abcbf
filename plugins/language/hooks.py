"""pluggy hooks of the language plugin: registers LanguageExplainer, the LLM tool ``explain_solution``
and the ``sage train/eval/ship language`` commands.

Entry point (pyproject): ``[project.entry-points.sage] language = "plugins.language.hooks"``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from sage_core import hookimpl
from sage_core.cli import command_group

from .plugin import LanguageExplainer


@hookimpl
def sage_register_plugins(register: Any) -> None:
    register(LanguageExplainer)


@hookimpl
def sage_register_tools(register: Any) -> None:
    from .tools import TOOLS

    for tool in TOOLS:
        register(tool)


@click.command("language")
@click.option("--out", required=True, help="run directory (resumes if present)")
@click.option("--decoder", type=click.Choice(["nat", "ar"]), default="nat", show_default=True,
              help="mask-predict decoder or the autoregressive baseline")
@click.option("--minutes", type=float, default=30.0, show_default=True, help="training CPU-minutes")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n6", type=int, default=8000, show_default=True, help="6x6 training puzzles")
@click.option("--n4", type=int, default=3000, show_default=True, help="4x4 training puzzles")
@click.option("--batch", type=int, default=24, show_default=True)
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True,
              help="data-parallel processes of one torch thread each (CPU time of all counts)")
@click.option("--model", "model_json", default=None, help="JSON ModelConfig overrides, e.g. '{\"d\": 96}'")
def train_language(out: str, decoder: str, minutes: float, seed: int, n6: int, n4: int, batch: int,
                   lr: float, workers: int, model_json: str | None) -> None:
    """Train the explanation model from scratch on CPU (one thread per worker); --minutes counts
    the CPU time of all workers."""
    from .train import TrainArgs, train

    model = json.loads(model_json) if model_json else {"dec_layers": 3, "ff": 256}
    args = TrainArgs(out=out, decoder=decoder, minutes=minutes, seed=seed, n6=n6, n4=n4, batch=batch,
                     lr=lr, workers=workers, model=model)
    train(args, log=click.echo)


@click.command("language")
@click.option("--checkpoint", default=None, help="shipped name (nat, ar), run directory or .safetensors [nat]")
@click.option("--n", "n", type=int, default=500, show_default=True, help="held-out puzzles (seed 9001)")
@click.option("--size", type=click.Choice(["4", "6"]), default="6", show_default=True)
@click.option("--iters", type=int, default=10, show_default=True, help="mask-predict iterations")
@click.option("--plain", is_flag=True, help="plain confidence re-masking instead of energy-guided")
@click.option("--json", "as_json", is_flag=True)
def eval_language(checkpoint: str | None, n: int, size: str, iters: int, plain: bool, as_json: bool) -> None:
    """Explain held-out puzzles and check every claim: truth, coverage, parse failures, tokens/s."""
    from .evaluate import run_eval

    r = run_eval(checkpoint, n=n, size=int(size), iters=iters, guided=not plain)
    if as_json:
        click.echo(json.dumps(r))
        return
    for k, v in r.items():
        click.echo(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")


@click.command("language")
@click.option("--run", required=True, help="training run directory")
@click.option("--name", default="nat", show_default=True, help="shipped checkpoint name")
def ship_language(run: str, name: str) -> None:
    """Copy a run's weights to plugins/language/checkpoints/NAME.safetensors."""
    from .checkpoint import ship

    click.echo(f"wrote {ship(run, name)}")


@hookimpl
def sage_register_commands(cli: Any) -> None:
    command_group(cli, "train", "Train models.").add_command(train_language)
    command_group(cli, "eval", "Evaluate models.").add_command(eval_language)
    command_group(cli, "ship", "Ship trained checkpoints.").add_command(ship_language)
