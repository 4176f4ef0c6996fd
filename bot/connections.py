"""Slow or idle clients cannot exhaust the server.

uvicorn's h11 protocol, with two bounds it does not have on its own:

- **Time to send a request.** uvicorn closes an idle keep-alive connection after a response
  (`timeout_keep_alive`), but it sets no deadline on a fresh connection, nor on a request whose
  headers or body stop halfway: such a connection is held open for good. Here each request,
  headers and body, must arrive whole within `request_seconds` of the connection opening (or
  of the previous response); otherwise the connection is answered 408 (when no response has
  started) and closed. GitLab sends a delivery in one go and gives up itself after its webhook
  timeout (10 s by default), so a legitimate sender never comes near it.
- **Open connections.** At most `max_connections`, and never more than the process's
  open-file limit leaves room for (the journal, the GitLab pool and the logs need theirs): a
  held connection costs a file descriptor, and a process out of descriptors can accept
  nothing, a valid delivery or `/healthz` included. When a new connection would pass the
  bound, the connection that has waited longest without sending a whole request (a
  half-request, or an idle keep-alive) is closed to make room, as nginx reuses idle
  keep-alive connections when out of `worker_connections`. Only when every connection is
  serving a whole request is the new one refused, with 503.

uvicorn's own `limit_concurrency` answers 503 to new requests once the count of connections
(half-requests included) passes it, which would let 160 idle sockets turn valid deliveries
away; the bound here takes its place.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# Descriptors kept free beside the client connections: the journal, the log stream, the
# listening socket, DNS, and a burst the event loop accepts before it can close any.
RESERVED_FILES = 64
# However low the open-file limit, some clients must be served.
MIN_CONNECTIONS = 8

_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 16\r\n\r\nrequest timeout\n"
)
_BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 5\r\n\r\nbusy\n"
)


@dataclass(frozen=True)
class ConnectionLimits:
    request_seconds: float = 10.0
    max_connections: int = 256


def effective_max_connections(configured: int, *, other_files: int) -> int:
    """`configured`, lowered to what the open-file limit (RLIMIT_NOFILE) leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    room = soft - other_files - RESERVED_FILES
    return max(MIN_CONNECTIONS, min(configured, room))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol with a deadline per request and a bound on connections."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        self._arm_deadline()
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self._close("too many connections", answer=_BUSY_ANSWER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request on this keep-alive connection gets its own deadline.
        self._waiting_since = self.loop.time()
        self._arm_deadline()

    # -- the bounds ------------------------------------------------------------------------

    def waiting_for_request(self) -> bool:
        """The client has not sent a whole request: idle, mid-headers or mid-body."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.limits.request_seconds, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.waiting_for_request() and not self.transport.is_closing():
            self._close("request timeout", answer=_TIMEOUT_ANSWER)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest without a whole request."""
        waiting = [
            other
            for other in self.connections
            if other is not self
            and isinstance(other, GuardedH11Protocol)
            and other.waiting_for_request()
            and not other.transport.is_closing()
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda other: other._waiting_since)
        oldest._close("closed for a new connection", answer=_TIMEOUT_ANSWER)
        return True

    def _close(self, outcome: str, *, answer: bytes) -> None:
        # A response is only written when none has started on this connection (h11's
        # our_state is IDLE): never two responses, never one in the middle of another.
        if self.conn.our_state is h11.IDLE:
            self.transport.write(answer)
        log.warning(
            "client connection closed",
            extra={
                "outcome": outcome,
                "client": f"{self.client[0]}:{self.client[1]}" if self.client else None,
                "connections": len(self.connections),
            },
        )
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn (`http=`), bound to these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})
