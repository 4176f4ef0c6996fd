"""The GitLab client's transport: httpx's own, with the per-request costs of httpcore 1.0's
pool cut. The server's one client and each CLI run's (the audit's included) use it.

Profiles showed the client bound by the connection pool, not by the network or the rules: the
audit's thousands of small GET requests through 20 to 100 keep-alive connections
(`python -m bench.audit --profile`, and py-spy: 57% of its CPU in the pool's assignment), and
the server's calls through its 16 (py-spy during `python -m bench`'s part b: 21% of the bot's
busy samples in the assignment, 12.6% in asking idle connections whether they closed):

- `AsyncConnectionPool._assign_requests_to_connections` runs twice or more per request and
  is quadratic in the connections: it counts every connection again for each idle one, and
  lists every connection again for each queued request (encode/httpcore#1035, still open;
  pydantic/httpx2#974 and #1075 merged the same fix in a fork).
- On every such pass each idle connection is asked whether the server closed it, and the
  anyio stream answers by building a dictionary of socket attributes (with a `getpeername`
  system call); every read and write also enters an anyio cancel scope.

This keeps httpx, httpcore's HTTP/1.1 connections and h11 (TLS, timeouts, exceptions,
keep-alive, detecting a connection the server closed) and replaces the pool's assignment
pass (`_Pool`: one pass, and the "closed by the server?" question asked only of the
connection about to be handed out) and the network stream (`_Stream`: asyncio's own streams).
The client stays the process's one pooled `httpx.AsyncClient` (DESIGN.md, invariant 1); only
its transport is this one, and a test still passes its own transport to `open_gitlab`.
"""

# The stream and backend methods take `timeout` because httpcore's interface does.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
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


class _Stream(httpcore.AsyncNetworkStream):
    """An httpcore network stream on asyncio's own streams.

    httpcore's default (anyio) stream enters a cancel scope for every read and write and
    builds a dictionary of socket attributes, with a `getpeername` system call, for every
    check of an idle connection; this one uses `asyncio.timeout` and asks the reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading from GitLab") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to GitLab") from None
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._writer.close()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of an idle connection: anything there (the server's EOF, or bytes no
            # request asked for, like a 408 before it hangs up) means it cannot be reused.
            # The event loop has already read what arrived into the reader; its buffer has
            # no public accessor. Without one (another Python), every idle connection counts
            # as used up: correct, only slower (a new connection per request).
            buffered = getattr(self._reader, "_buffer", None)
            return (
                self._reader.at_eof()
                or self._writer.transport.is_closing()
                or buffered is None
                or len(buffered) > 0
            )
        name = {"client_addr": "sockname", "server_addr": "peername"}.get(info, info)
        if name in ("ssl_object", "sockname", "peername", "socket"):
            return self._writer.get_extra_info(name)
        return None


class _Backend(httpcore.AsyncNetworkBackend):
    """Connections on asyncio's streams (`_Stream`)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                # asyncio sets TCP_NODELAY on TCP sockets, as anyio does.
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self._configured(reader, writer, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self._configured(reader, writer, socket_options)

    @staticmethod
    def _configured(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> _Stream:
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool, assigning queued requests to connections in one pass: O(connections
    + requests) per call instead of O(connections² + connections x requests).

    The same decisions as httpcore 1.0.9: drop closed connections, close idle ones past
    `max_keepalive_connections` (counting idle connections, where 1.0.9 counts all of them:
    encode/httpcore#1035 "bug 1"), then give each queued request an idle connection of its
    origin, else a new connection, else one made by closing an idle one. Three changes:

    - a connection handed to a request that has not started on it yet is neither closed nor
      handed out again (encode/httpcore#1110);
    - an idle HTTP/1.1 connection goes to one queued request per pass, not to all of them
      (pydantic/httpx2#1075), which spares the others a `ConnectionNotAvailable` round;
    - whether an idle connection has expired (its keep-alive time is up, or the server
      closed it: a poll of its socket) is asked of the one about to be handed out, not of
      every idle connection on every pass; an expired one is closed then, or when the pool
      needs room, or when the client closes.
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
            if id(connection) not in reserved and connection.is_idle():
                if len(idle) >= self._max_keepalive_connections:
                    closing.append(connection)
                    continue
                idle.append(connection)
            kept.append(connection)
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            if self._reuse(pool_request, origin, idle, closing):
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

    def _reuse(
        self,
        pool_request: Any,
        origin: httpcore.Origin,
        idle: list[httpcore.AsyncConnectionInterface],
        closing: list[httpcore.AsyncConnectionInterface],
    ) -> bool:
        """Hand the request an idle connection of its origin that is still good, closing
        the expired ones met on the way; False when there is none."""
        for connection in [c for c in idle if c.can_handle_request(origin)]:
            idle.remove(connection)
            if connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
            elif connection.is_available():
                pool_request.assign_to_connection(connection)
                return True
        return False


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
