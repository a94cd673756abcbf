"""Bearer-token check: with ``SAGE_API_TOKEN`` set, every request but ``/healthz`` and the
static web page (which holds no data and asks the user for the token) needs it."""

from __future__ import annotations

import hmac


def is_open(path: str) -> bool:
    """True for the paths served without a token."""
    return path in ("/healthz", "/") or path.startswith("/static/")


def authorized(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (compared in constant time)."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
