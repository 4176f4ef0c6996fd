"""httpx's own transport with two per-request costs of httpcore 1.0's pool cut, for the audit.

An audit sends thousands of small GET requests through 20 to 100 keep-alive connections, and
the profile (`python -m bench.audit --profile`) showed the client bound by the connection
pool, not by the network or the rules:

- `AsyncConnectionPool._assign_requests_to_connections` runs twice or more per request and
  is quadratic in the connections: it counts every connection again for each idle one, and
  lists every connection again for each queued request (encode/httpcore#1035, still open;
  pydantic/httpx2#974 and #1075 merged the same fix in a fork).
- Each idle connection it looks at asks the anyio stream `is_readable`, and anyio builds a
  dictionary of socket attributes (with a `getpeername` system call) to hand out the raw
  socket each time.

This keeps everything else of httpx and httpcore (HTTP/1.1 with h11, TLS, timeouts,
exceptions, keep-alive expiry, detecting a connection the server closed) and replaces only
those two: `_Pool` assigns requests in one pass over the connections, and `_Stream` keeps
its socket. The client stays the process's one pooled `httpx.AsyncClient` (DESIGN.md,
invariant 1); only its transport is this one.
"""

# The stream and backend methods take `timeout` because httpcore's interface does.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# The pool subclass depends on these attributes of httpcore 1.0's AsyncConnectionPool:
# `_connections`, `_requests`, `_max_connections`, `_max_keepalive_connections`, and
# AsyncPoolRequest's `connection`, `is_queued()` and `assign_to_connection()`. If a future
# httpcore lacks one, `pooled_transport` falls back to httpx's own pool.
_POOL_ATTRIBUTES = ("_connections", "_requests", "_max_connections", "_max_keepalive_connections")


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether the socket has something to read (for an idle HTTP/1.1 connection: the server
    closed it); as httpcore's `is_socket_readable`. A socket that is gone counts as
    readable, so the connection is dropped rather than used."""
    if sock is None:
        return True
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """An httpcore stream that looks its socket up once instead of on every check."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in `_Stream`."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(
            await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool, assigning queued requests to connections in one pass: O(connections
    + requests) per call instead of O(connections² + connections x requests).

    The same decisions as httpcore 1.0.9, in its order: drop closed connections, close
    expired ones and idle ones past `max_keepalive_connections` (counting idle connections,
    where 1.0.9 counts all of them: encode/httpcore#1035 "bug 1"); then give each queued
    request an available connection of its origin, else a new connection, else one made
    by closing an idle one. Two changes keep one connection from serving two requests: a
    connection already handed to a request that has not started on it yet is neither closed
    nor handed out again (encode/httpcore#1110), and an idle HTTP/1.1 connection is handed
    to one queued request per pass, not to all (pydantic/httpx2#1075), which spares the
    losers a `ConnectionNotAvailable` round and another pass each.
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        # Connections handed to a request: the in-flight ones, and those assigned to a
        # request that has not started on it yet (still idle, so not to be taken back).
        reserved = {id(r.connection) for r in self._requests if r.connection is not None}
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        idle: list[httpcore.AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if id(connection) in reserved:
                kept.append(connection)
            elif connection.has_expired():
                closing.append(connection)
            elif connection.is_idle():
                if len(idle) >= self._max_keepalive_connections:
                    closing.append(connection)
                else:
                    idle.append(connection)
                    kept.append(connection)
            else:
                kept.append(connection)
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = next((c for c in idle if c.can_handle_request(origin)), None)
            if chosen is not None and chosen.is_available():
                idle.remove(chosen)
                pool_request.assign_to_connection(chosen)
                continue
            if len(self._connections) >= self._max_connections:
                if not idle:
                    continue  # it waits for a connection to come free
                # Make room: close an idle connection (of another origin) for a new one.
                victim = idle.pop(0)
                self._connections.remove(victim)
                closing.append(victim)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


def pooled_transport(
    *, verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """httpx's HTTP/1.1 transport, as `httpx.AsyncClient(verify=..., limits=...)` builds it,
    with `_Pool` and `_Backend` in place of httpcore's pool and backend."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    default = getattr(transport, "_pool", None)
    if type(default) is not httpcore.AsyncConnectionPool or not all(
        hasattr(default, name) for name in _POOL_ATTRIBUTES
    ):
        return transport  # another httpx or httpcore than the one this was written for
    transport._pool = _Pool(
        ssl_context=default._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=_Backend(),
    )
    return transport
