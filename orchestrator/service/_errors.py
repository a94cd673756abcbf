"""RequestError: a request the service refuses, with the HTTP status, the bad field and a fix."""

from __future__ import annotations

from typing import Any

from sage_core import SageError


class RequestError(SageError, ValueError):
    """A refused request. ``status`` is the HTTP code it maps to (422 bad input, 404 unknown id,
    409 wrong state, 413 too large, 503 busy), ``field`` the JSON path of the bad input (e.g.
    ``puzzle[2][3]``) or None, ``retry_after`` seconds for a 503."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": message, "field": ..., "status": ...}``."""
        body: dict[str, Any] = {"error": self.message, "field": self.field, "status": self.status}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


class Cancelled(RequestError):
    """The caller cancelled the work (a cancel token, a DELETE or a client that went away)."""

    def __init__(self, message: str = "cancelled by the caller") -> None:
        super().__init__(message, status=499)
