"""The ``sage`` command. The core knows ``plugins``, ``check``, ``new-plugin`` and ``--version``;
every other command comes from a package's ``sage_register_commands`` hook.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import SageError
from .registry import Registry, get_registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sage-irp", prog_name="sage")
def cli() -> None:
    """sage-irp: compose reasoning pipelines out of iterative refinement plugins."""


def plugin_rows(registry: Registry) -> list[dict[str, Any]]:
    """One row per registered IRP plugin and per failed entry point (for ``sage plugins``)."""
    rows = [
        {"name": item.name, "version": item.version, "distribution": item.distribution,
         "source": item.source, "hooks": registry.hooks_of(item.source), "status": "ok", "error": None}
        for item in sorted(registry.plugins.values(), key=lambda i: i.name)
    ]
    rows += [
        {"name": failure.source, "version": None, "distribution": failure.distribution,
         "source": failure.entry_point or failure.source, "hooks": [], "status": "failed",
         "error": f"{failure.error}. {failure.hint}"}
        for failure in registry.failures
    ]
    return rows


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List installed IRP plugins, where they come from, and any that failed to load."""
    rows = plugin_rows(get_registry())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "version", "distribution", "hooks", "status")
    for row in rows:
        status = row["status"] if row["status"] == "ok" else f"failed: {row['error']}"
        table.add_row(row["name"], row["version"] or "-", row["distribution"] or "-",
                      ", ".join(row["hooks"]) or "-", status)
    Console().print(table)


@cli.command("check")
@click.argument("plugin")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
def check_command(plugin: str, as_json: bool) -> None:
    """Run the conformance kit on the installed plugin PLUGIN; exit 1 if a check fails."""
    from .testing import check_plugin

    factory = get_registry().plugin_class(plugin)
    report = check_plugin(factory, raise_on_failure=False)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in report.results], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("check", "result", "detail", title=f"conformance of {plugin!r}")
        for result in report.results:
            table.add_row(result.check, "pass" if result.passed else "FAIL", result.detail or "")
        Console().print(table)
    if not report.passed:
        sys.exit(1)


@cli.command("new-plugin")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to create the package (default: ./sage-NAME).")
def new_plugin_command(name: str, directory: Path | None) -> None:
    """Write a ready-to-install IRP plugin package called NAME."""
    from .scaffold import write_plugin_package

    target = write_plugin_package(name, directory)
    click.echo(f"created {target}: pip install -e {target} && pytest {target}")


def command_group(cli: click.Group, name: str, help_text: str) -> click.Group:
    """The existing ``name`` group of ``cli`` (another package may have made it) or a new one, so
    several packages can add subcommands to ``sage train``, ``sage eval``, ... through the hook."""
    existing = cli.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name, help=help_text)
    cli.add_command(group)
    return group


def build_cli(registry: Registry | None = None) -> click.Group:
    """A ``sage`` group with the core commands plus every installed package's commands."""
    registry = registry or get_registry()
    group = click.Group("sage", commands=dict(cli.commands), params=list(cli.params), callback=cli.callback,
                        help=cli.help, context_settings=cli.context_settings)
    registry.hook.sage_register_commands(cli=group)
    return group


def main(argv: list[str] | None = None) -> None:
    """Console entry point: errors become one line on stderr and exit code 2."""
    try:
        group = build_cli()
        group.main(args=argv, prog_name="sage", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("sage: error: aborted", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"sage: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except (SageError, OSError, ValueError) as exc:
        click.echo(f"sage: error: {exc}", err=True)
        sys.exit(2)
