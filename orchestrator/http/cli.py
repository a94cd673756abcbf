"""``sage serve``: the HTTP API (uvicorn, or Ray Serve with ``--backend ray``)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..service import Limits


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Session store directory for runs (default: the SessionStore default).")
@click.option("--backend", type=click.Choice(["uvicorn", "ray"]), default="uvicorn", show_default=True)
@click.option("--address", default=None, help="Ray cluster address to join (--backend ray; default: a local one).")
@click.option("--replicas", type=int, default=1, show_default=True, help="Ray Serve replicas (--backend ray).")
@click.option("--no-batching", is_flag=True, help="One model call per request (the benchmark's baseline).")
@click.option("--max-batch", type=int, default=64, show_default=True, help="Sessions stepped together per plugin.")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Longest a batch waits for the clients just answered to send their next solves (0: never).")
@click.option("--max-body", type=int, default=Limits().max_body_bytes, show_default=True,
              help="Largest request body in bytes (413 beyond); raise it for larger puzzle pictures.")
@click.option("--max-queue", type=int, default=Limits().max_queue, show_default=True,
              help="Solves queued at once; beyond it 503 with Retry-After.")
@click.option("--queue-timeout", type=float, default=Limits().queue_timeout_s, show_default=True,
              help="Seconds a solve may wait for a batch slot before 503.")
@click.option("--pipelines", "pipelines_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of NAME.toml pipelines (default: $SAGE_PIPELINES or examples/pipelines).")
@click.option("--threads", type=int, default=None,
              help="torch threads for the model (default: torch's own; uvicorn backend only).")
@click.option("--log-level", default="warning", show_default=True, help="uvicorn log level.")
def serve_command(host: str, port: int, store_dir: Path | None, backend: str, address: str | None, replicas: int,
                  no_batching: bool, max_batch: int, batch_wait_ms: float, max_body: int, max_queue: int, queue_timeout: float,
                  pipelines_dir: Path | None, threads: int | None, log_level: str) -> None:
    """Serve solves, pipeline runs (SSE telemetry) and a web page at http://HOST:PORT/ (/docs: the API).

    Set SAGE_API_TOKEN to require 'Authorization: Bearer <token>' on every endpoint but /healthz.
    Ctrl-C (or SIGTERM) checkpoints running runs before exiting.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise click.ClickException("sage serve needs FastAPI and uvicorn: pip install 'sage-irp[serve]'") from None
    from ._app import ServeConfig, create_app

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    config = ServeConfig(None if store_dir is None else str(store_dir), not no_batching, max_batch,
                         Limits(max_body_bytes=max_body, max_queue=max_queue, queue_timeout_s=queue_timeout),
                         None if pipelines_dir is None else str(pipelines_dir), batch_wait_s=batch_wait_ms / 1e3)
    if backend == "ray":
        from ._ray_serve import deploy, shutdown

        try:
            import ray  # noqa: F401
        except ImportError:
            raise click.ClickException("--backend ray needs Ray Serve: pip install 'sage-irp[ray]'") from None
        deploy(config, host=host, port=port, replicas=replicas, address=address)
        click.echo(f"serving on http://{host}:{port}/ under Ray Serve ({replicas} replica(s)); Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            shutdown()
        return
    click.echo(f"serving on http://{host}:{port}/ (API: /docs); Ctrl-C stops")
    # the access log only where its lines are shown (info and below): uvicorn formats each line's
    # fields before the logger drops it, on every request
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30,
                access_log=str(log_level).lower() in ("trace", "debug", "info"))
