"""The GitLab client's transport: httpx's own, with the idle-connection check made cheap.

Each time httpcore's pool hands out a connection or takes one back
(`AsyncConnectionPool._assign_requests_to_connections`), it asks every idle connection
whether its socket has become readable (`has_expired`: a readable idle socket means GitLab
closed it). With the anyio backend each ask looks the socket up through anyio's typed
attributes, which build a table of every attribute (peer name and address family included)
anew: with a pool of 16 that was a fifth of the bot's CPU per GitLab call in the benchmark.
Here each connection's socket is looked up once; the readability check is the same poll.
"""

# httpcore's network interface takes `timeout` parameters; these classes implement it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


def _is_readable(sock: socket.socket | None) -> bool:
    """Whether a read would return at once (data, or the b"" of a closed connection);
    httpcore's `is_socket_readable`, on a socket looked up once."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True  # gone: as if the next read returned b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

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
            return _is_readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def socket_checked_transport(
    *, limits: httpx.Limits, verify: ssl.SSLContext | bool
) -> httpx.AsyncHTTPTransport:
    """httpx's transport with the cheap idle check. Should a later httpcore name its
    backend otherwise, this is httpx's transport unchanged."""
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify)
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.AsyncNetworkBackend):
        pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return transport
