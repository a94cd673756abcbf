"""``sage run``, ``sage resume``, ``sage plot`` and ``sage demo`` (added through sage_register_commands)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import click

from sage_core import HaltEvent

from ._orchestrator import Orchestrator, Result
from ._pipeline import Pipeline
from ._trust import TrustStore

TRUST_FILE = "trust.msgpack"


def open_store(root: Path | None) -> Any:
    try:
        from persistence import SessionStore
    except ImportError as exc:
        raise click.ClickException(f"sessions need the persistence package's SessionStore: {exc}") from None
    return SessionStore(root=root)


def _trust_path(store: Any) -> Path | None:
    root = getattr(store, "root", None)
    return None if root is None else Path(root) / TRUST_FILE


class _Display:
    """Rich live table on a terminal; plain lines (one per halt, then a summary) otherwise."""

    def __init__(self, orchestrator: Orchestrator, live: bool, quiet: bool = False) -> None:
        self.orchestrator = orchestrator
        self.quiet = quiet
        self.live = None
        self._last = 0.0
        if live:
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=8, transient=False)
            self.live.start()

    def _table(self) -> Any:
        from rich.table import Table

        o = self.orchestrator
        table = Table("node", "plugin", "status", "steps", "energy", "ATP spent", "ATP allocated",
                      title=f"session {o.session}  budget {o.budget if o.budget is not None else 'unlimited'}")
        for run in o.runs.values():
            energy = run.history.last
            status = run.status if run.fault is None else f"failed: {run.fault.kind}"
            if run.decision is not None and run.fault is None:
                status = f"{'halted' if run.status == 'halted' else run.status}: {run.decision.policy}"
            table.add_row(run.name, run.node.plugin_name, status, str(run.history.steps),
                          "-" if energy is None else f"{energy:.6g}", f"{run.history.spent:.6g}",
                          "inf" if math.isinf(run.allocation) else f"{run.allocation:.6g}")
        return table

    def update(self, events: list[Any]) -> None:
        if self.live is not None:
            now = time.monotonic()
            if now - self._last > 0.1 or any(isinstance(e, HaltEvent) for e in events):
                self.live.update(self._table())
                self._last = now
            return
        if self.quiet:
            return
        for event in events:
            if isinstance(event, HaltEvent):
                energy = "-" if event.energy is None else f"{event.energy:.6g}"
                click.echo(f"halt {event.plugin}: {event.policy} after {event.step} steps, energy {energy}, "
                           f"{event.atp_spent:.6g} ATP ({event.reason})")

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.stop()


def drive(orchestrator: Orchestrator, store: Any, *, checkpoint_every: int, as_json: bool,
          stop_after: int | None = None) -> Result | None:
    """Step a started or resumed session to the end (or ``stop_after`` rounds), checkpointing."""
    display = _Display(orchestrator, live=not as_json and sys.stdout.isatty(), quiet=as_json)
    rounds = 0
    try:
        while not orchestrator.done:
            display.update(orchestrator.step())
            rounds += 1
            if checkpoint_every and rounds % checkpoint_every == 0:
                orchestrator.checkpoint(store)
            if stop_after is not None and rounds >= stop_after:
                orchestrator.checkpoint(store)
                return None
    finally:
        display.close()
    result = orchestrator.finish()
    orchestrator.checkpoint(store)
    return result


def report(result: Result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=True))
        return
    click.echo(f"session {result.session}: {result.atp_spent:.6g} ATP spent"
               + (f" of {result.budget:.6g}" if result.budget is not None else ""))
    for name, node in result.nodes.items():
        energy = "-" if node.energy is None else f"{node.energy:.6g}"
        flag = "FAILED " if node.failed else ""
        click.echo(f"  {name:<12} {flag}{node.decision.policy:<16} steps {node.steps:<6} energy {energy:<12} "
                   f"ATP {node.atp_spent:.6g}  {node.decision.reason}")
    click.echo("  trust: " + ", ".join(f"{k}={v:.3f}" for k, v in result.trust.items()))


def _save_trust(orchestrator: Orchestrator, store: Any) -> None:
    path = _trust_path(store)
    if path is not None:
        orchestrator.trust.merge_into(path)


@click.command("run")
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--budget", type=float, default=None, help="ATP budget (default: the pipeline's, else unlimited).")
@click.option("--session", "session_id", default=None, help="Session id (default: a new random id).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Session store directory (default: the SessionStore default).")
@click.option("--checkpoint-every", type=int, default=100, show_default=True, help="Checkpoint every N rounds.")
@click.option("--scheduler", default=None, help="energy_drop, round_robin or a registered name.")
@click.option("--backend", default=None, help="inline, threads, ray or a registered name.")
def run_command(pipeline_file: Path, budget: float | None, session_id: str | None, as_json: bool,
                store_dir: Path | None, checkpoint_every: int, scheduler: str | None, backend: str | None) -> None:
    """Run the pipeline in PIPELINE_FILE (TOML) as a checkpointed session."""
    store = open_store(store_dir)
    path = _trust_path(store)
    trust = TrustStore.load(path) if path is not None else TrustStore()
    orchestrator = Orchestrator(Pipeline.from_toml(pipeline_file), scheduler=scheduler, backend=backend, trust=trust)
    try:
        orchestrator.start(budget=budget, session=session_id, store=store)
        if not as_json:
            click.echo(f"session {orchestrator.session}")
        result = drive(orchestrator, store, checkpoint_every=checkpoint_every, as_json=as_json)
        _save_trust(orchestrator, store)
    finally:
        orchestrator.close()
    report(result, as_json)  # type: ignore[arg-type]


@click.command("resume")
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
def resume_command(session_id: str, as_json: bool, store_dir: Path | None, checkpoint_every: int) -> None:
    """Continue session SESSION_ID from its latest checkpoint."""
    store = open_store(store_dir)
    orchestrator = Orchestrator.from_store(store, session_id)
    try:
        result = drive(orchestrator, store, checkpoint_every=checkpoint_every, as_json=as_json)
        _save_trust(orchestrator, store)
    finally:
        orchestrator.close()
    report(result, as_json)  # type: ignore[arg-type]


def plot_session(orchestrator_dict: dict[str, Any], out: Path) -> Path:
    """Draw energy versus step per node (matplotlib) into ``out``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise click.ClickException(f"plotting needs matplotlib: pip install 'sage-irp[viz]' ({exc})") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    positive = True
    for name, node in orchestrator_dict["nodes"].items():
        energies = node["energies"]
        if energies:
            ax.plot(range(len(energies)), energies, label=f"{name} ({node['plugin']})", marker="." if len(energies) < 40 else None)
            positive = positive and min(energies) > 0
    if positive:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole
    ax.set_xlabel("step")
    ax.set_ylabel("energy")
    ax.set_title(f"session {orchestrator_dict['session']}")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


@click.command("plot")
@click.argument("session_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("energy.png"), show_default=True)
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def plot_command(session_id: str, out: Path, store_dir: Path | None) -> None:
    """Plot energy versus step per node of session SESSION_ID."""
    snapshot = open_store(store_dir).load(session_id)
    click.echo(f"wrote {plot_session(snapshot.orchestrator, out)}")
