"""orchestrator.http: the ``sage serve`` FastAPI app over :mod:`orchestrator.service` (see docs/serve.md)."""

from ._app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
