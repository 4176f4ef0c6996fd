"""The GitLab client's connection pool (`bot.http_pool`), over real loopback HTTP/1.1.

A small keep-alive server counts the connections it accepts and the most it held at once; it
can close a connection after answering, as a server whose keep-alive timeout ran out does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bot.gitlab import open_gitlab
from bot.http_pool import pooled_transport
from bot.settings import GitLabSettings


@dataclass
class Server:
    url: str = ""
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    answered: int = 0
    close_after_answer: bool = False
    stray: bytes = b""  # sent on the idle connection once told to (a 408 on idle timeout)
    send_stray: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold: int = 0  # answers waiting for `release` before they are sent
    waiting: int = 0
    all_waiting: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def keep_alive_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    state = Server()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.accepted += 1
        state.open_now += 1
        state.most_open = max(state.most_open, state.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                if state.hold:
                    state.waiting += 1
                    if state.waiting == state.hold:
                        state.all_waiting.set()
                    await state.release.wait()
                body = b'{"ok": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                state.answered += 1
                if state.stray:
                    await state.send_stray.wait()
                    writer.write(state.stray)
                    await writer.drain()
                    state.stray = b""
                if state.close_after_answer:
                    writer.close()
                    await writer.wait_closed()
                    state.closed.set()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            state.open_now -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def client(url: str, size: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    return httpx.AsyncClient(
        base_url=url, transport=pooled_transport(verify=True, limits=limits), timeout=10
    )


async def test_requests_beyond_the_pool_wait_for_a_connection_and_all_complete() -> None:
    async with keep_alive_server() as server, client(server.url, 4) as http:
        server.hold = 4
        first = [asyncio.create_task(http.get(f"/r/{i}")) for i in range(4)]
        # Four requests hold the four connections; the rest must queue, not open more.
        await server.all_waiting.wait()
        rest = [asyncio.create_task(http.get(f"/r/{i}")) for i in range(4, 60)]
        await asyncio.sleep(0)
        server.release.set()
        responses = await asyncio.gather(*first, *rest)
    assert [r.json() for r in responses] == [{"ok": True}] * 60
    assert server.answered == 60
    assert server.most_open <= 4 and server.accepted == 4  # kept alive and reused


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed() -> None:
    async with keep_alive_server() as server, client(server.url, 2) as http:
        server.close_after_answer = True
        assert (await http.get("/one")).status_code == 200
        await server.closed.wait()
        # The idle connection's socket now reads EOF: the pool drops it and connects again.
        assert (await http.get("/two")).status_code == 200
    assert server.accepted == 2 and server.answered == 2


async def test_a_connection_with_bytes_nobody_asked_for_is_not_reused() -> None:
    """A server may answer an idle keep-alive connection with a 408 before it hangs up: the
    next request must not read that as its answer."""
    async with keep_alive_server() as server, client(server.url, 2) as http:
        server.close_after_answer = True
        server.stray = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n"
        assert (await http.get("/one")).status_code == 200
        # The answer was read whole; now the connection is idle, and the 408 arrives.
        server.send_stray.set()
        await server.closed.wait()
        # Give the loop turns to read what the server sent (bounded by turns, not time).
        (connection,) = http._transport._pool.connections  # type: ignore[attr-defined]
        for _ in range(1000):
            if connection.has_expired():
                break
            await asyncio.sleep(0)
        assert (await http.get("/two")).status_code == 200
    assert server.accepted == 2


async def test_the_client_open_gitlab_gives_server_and_cli_keeps_to_its_pool() -> None:
    """The server's lifespan and every CLI run open the one client through `open_gitlab`:
    more calls than connections queue on the pool and reuse its kept-alive connections."""
    async with keep_alive_server() as server:
        settings = GitLabSettings(
            gitlab_url=server.url, gitlab_token="glpat-test", http_pool_size=4
        )
        async with open_gitlab(settings) as gitlab:
            server.hold = 4
            first = [asyncio.create_task(gitlab.request("GET", f"/r/{i}")) for i in range(4)]
            await server.all_waiting.wait()
            rest = [asyncio.create_task(gitlab.request("GET", f"/r/{i}")) for i in range(4, 40)]
            server.release.set()
            responses = await asyncio.gather(*first, *rest)
    assert [r.json() for r in responses] == [{"ok": True}] * 40
    assert server.most_open <= 4 and server.accepted == 4


async def test_the_pool_is_the_lean_one() -> None:
    from bot.http_pool import _Pool

    transport = pooled_transport(verify=True, limits=httpx.Limits(max_connections=3))
    assert isinstance(transport._pool, _Pool)
    await transport.aclose()


async def test_timeouts_and_refused_connections_are_httpx_s_errors() -> None:
    """GitLab.request retries httpx.TransportError: the stream must raise those, not its own."""
    async with keep_alive_server() as server:
        server.hold = 1  # never released: the answer never comes
        limits = httpx.Limits(max_connections=2)
        async with httpx.AsyncClient(
            base_url=server.url,
            transport=pooled_transport(verify=True, limits=limits),
            timeout=httpx.Timeout(10, read=0.2),
        ) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get("/slow")
        port = int(server.url.rsplit(":", 1)[1])
    # The server is closed now: nothing listens on its port.
    async with client(f"http://127.0.0.1:{port}", 2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/gone")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by Debian's openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS test")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_https_with_the_given_ca_and_refused_without_it(tmp_path: Path) -> None:
    """GitLab is reached over TLS: the handshake, keep-alive and verification hold."""
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with keep_alive_server(server_tls) as server:
        trusted = ssl.create_default_context(cafile=str(cert))
        limits = httpx.Limits(max_connections=2)
        transport = pooled_transport(verify=trusted, limits=limits)
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as http:
            for path in ("/one", "/two", "/three"):
                assert (await http.get(path)).json() == {"ok": True}
        assert server.accepted == 1  # one TLS connection, kept alive
        async with client(server.url, 2) as http:  # the system's CAs: not this certificate
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get("/untrusted")
