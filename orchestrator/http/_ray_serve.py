"""``sage serve --backend ray``: the same FastAPI app under Ray Serve (``@serve.ingress``), one
:class:`~orchestrator.service.Service` (with its BatchPool) per replica."""

from __future__ import annotations

from typing import Any

from ._app import ServeConfig, create_app

APP_NAME = "sage"


def deploy(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
           address: str | None = None, num_cpus: int | None = None) -> Any:
    """Start (or join, with ``address``) a Ray cluster, serve the app on ``host:port`` with
    ``replicas`` replicas and return the deployment handle. A new local cluster gets
    ``num_cpus`` CPUs (default: Ray's count) and binds to loopback."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ImportError(f"--backend ray needs Ray Serve: pip install 'sage-irp[ray]' ({exc})") from None
    if not ray.is_initialized():
        local = {} if address else {"num_cpus": num_cpus, "_node_ip_address": "127.0.0.1"}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    app = create_app(config)  # the replica builds its Service at startup from the plain config

    @serve.deployment(name=APP_NAME, num_replicas=replicas, ray_actor_options={"num_cpus": 0},
                      max_ongoing_requests=max(256, config.limits.max_queue))
    @serve.ingress(app)
    class SageServe:
        """One replica: the FastAPI app and its own Service."""

    serve.start(http_options={"host": host, "port": port})
    return serve.run(SageServe.bind(), name=APP_NAME, route_prefix="/")


def shutdown() -> None:
    """Stop Ray Serve (each replica's Service checkpoints its runs) and the Ray connection."""
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
