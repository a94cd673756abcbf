"""``sage sessions list|show|rm`` (added to the ``sage`` command by :mod:`persistence.hooks`)."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import click

from ._store import SessionStore, default_root

_ROOT_HELP = "Session store directory (default: $SAGE_HOME/sessions, else ./.sage/sessions)."


def _root_option(func: Any) -> Any:
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help=_ROOT_HELP)(func)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become strings: the output stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _time(stamp: float) -> str:
    return _dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _energy(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


@click.group("sessions")
def sessions_group() -> None:
    """List, inspect and delete saved reasoning sessions."""


@sessions_group.command("list")
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of sessions.")
def list_command(root: Path | None, as_json: bool) -> None:
    """List the sessions in the store, most recently updated first."""
    store = SessionStore(root)
    infos = store.list()
    if as_json:
        click.echo(json.dumps([_json_safe(info.to_dict()) for info in infos], indent=2, allow_nan=False))
        return
    if not infos:
        click.echo(f"no sessions in {store.root}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "plugins", "steps", "checkpoints", "size", "updated", title=f"sessions in {store.root}")
    for info in infos:
        plugins = ", ".join(f"{node}={plugin}" for node, plugin in info.plugins.items()) or "-"
        steps = ", ".join("-" if s is None else str(s) for s in info.steps.values()) or "-"
        ckpts = str(len(info.checkpoints)) + (f" (latest {info.latest.number})" if info.latest else "")
        if info.problems:
            ckpts += f", {len(info.problems)} unreadable"
        table.add_row(info.id, plugins, steps, ckpts, _size(info.bytes), _time(info.updated))
    Console().print(table)


@sessions_group.command("show")
@click.argument("session_id", metavar="ID")
@_root_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show_command(session_id: str, root: Path | None, as_json: bool) -> None:
    """Show a session: its nodes (plugin, version, step, energy), size and checkpoints."""
    info = SessionStore(root).info(session_id)
    if as_json:
        click.echo(json.dumps(_json_safe(info.to_dict()), indent=2, allow_nan=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"session [bold]{info.id}[/bold]  ({info.path})")
    console.print(f"created {_time(info.created)}, updated {_time(info.updated)}, {_size(info.bytes)} on disk")
    console.print(f"checkpoints: {', '.join(map(str, info.checkpoints)) or 'none'}"
                  + (f" (latest loadable: {info.latest.number})" if info.latest else ""))
    for problem in info.problems:
        console.print(f"[red]unreadable[/red] {problem}", highlight=False)
    if info.latest is not None:
        table = Table("node", "plugin", "version", "api", "step", "energy", "tensors", "size",
                      title=f"checkpoint {info.latest.number}")
        for node in info.latest.nodes:
            table.add_row(node.name, node.plugin, node.version, str(node.api_version),
                          "-" if node.step is None else str(node.step), _energy(node.energy), str(node.tensors),
                          _size(node.bytes))
        console.print(table)


@sessions_group.command("rm")
@click.argument("session_ids", metavar="ID...", nargs=-1, required=True)
@_root_option
def rm_command(session_ids: tuple[str, ...], root: Path | None) -> None:
    """Delete sessions and all their checkpoints."""
    store = SessionStore(root)
    for session_id in session_ids:
        store.delete(session_id)
        click.echo(f"removed session {session_id}")


__all__ = ["default_root", "sessions_group"]
