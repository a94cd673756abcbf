"""``sage mcp``: serve the tool catalogue over stdio (what desktop clients launch) or HTTP."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("mcp")
@click.option("--http", "use_http", is_flag=True, help="Serve streamable HTTP at /mcp instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="HTTP port.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Session store of pipeline runs (default: $SAGE_HOME/sessions).")
@click.option("--pipelines", "pipelines_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Folder of pipeline TOML files run_pipeline knows by name "
                                  "(default: $SAGE_PIPELINES or examples/pipelines).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="torch threads: one answers a call fastest on a small busy CPU (idle OpenMP workers spin "
                   "beside the server's I/O threads); more help large batches")
def mcp_command(use_http: bool, host: str, port: int, store_dir: Path | None, pipelines_dir: Path | None,
                threads: int) -> None:
    """Serve sage's solvers and pipelines as MCP tools (stdio, or --http with $SAGE_API_TOKEN as bearer token)."""
    try:
        import anyio

        from ._mcp import build_server, http_app, serve_stdio
    except ImportError:
        from . import MCP_EXTRA

        raise click.ClickException(MCP_EXTRA) from None
    from ..service import Service
    from ._catalogue import Catalogue

    import torch

    torch.set_num_threads(threads)
    catalogue = Catalogue(service=Service(store_dir, pipelines_dir=pipelines_dir))
    server = build_server(catalogue)
    try:
        if not use_http:
            anyio.run(serve_stdio, server)
            return
        import uvicorn

        click.echo(f"sage mcp: streamable HTTP on http://{host}:{port}/mcp", err=True)
        uvicorn.run(http_app(server, host=host), host=host, port=port, log_level="warning")
    finally:
        catalogue.close()  # running pipeline runs are checkpointed, resumable by their session id
