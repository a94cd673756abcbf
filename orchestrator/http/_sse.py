"""Server-Sent Events framing: one ``id``/``event``/``data`` block per telemetry event."""

from __future__ import annotations

import json
from typing import Any

#: Comment line sent while a stream is idle, so proxies and clients keep the connection open.
KEEPALIVE = b": keep-alive\n\n"


def sse_frame(index: int, event: dict[str, Any]) -> bytes:
    """One SSE message: ``id`` is the event's index in the run (resume with Last-Event-ID),
    ``event`` its kind (step, halt, end), ``data`` the event as strict JSON on one line."""
    data = json.dumps(event, allow_nan=False, separators=(",", ":"))
    return f"id: {index}\nevent: {event.get('kind', 'message')}\ndata: {data}\n\n".encode()
