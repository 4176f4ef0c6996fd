"""The audit's lean connection pool (`bot.http_pool`), over real loopback HTTP/1.1.

A small keep-alive server counts the connections it accepts and the most it held at once; it
can close a connection after answering, as a server whose keep-alive timeout ran out does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from bot.http_pool import pooled_transport


@dataclass
class Server:
    url: str = ""
    accepted: int = 0
    open_now: int = 0
    most_open: int = 0
    answered: int = 0
    close_after_answer: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    hold: int = 0  # answers waiting for `release` before they are sent
    waiting: int = 0
    all_waiting: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def keep_alive_server() -> AsyncIterator[Server]:
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

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
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


async def test_the_pool_is_the_lean_one() -> None:
    from bot.http_pool import _Pool

    transport = pooled_transport(verify=True, limits=httpx.Limits(max_connections=3))
    assert isinstance(transport._pool, _Pool)
    await transport.aclose()
