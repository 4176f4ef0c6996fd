"""Slow clients cannot exhaust the server: a real `serve` process, real sockets.

The reproduction: 160 connections, each holding half a request (no secret needed), left a
process with a container's open-file limit unable to accept anything. Valid deliveries timed
out, and asyncio logged "socket.accept() out of system resource" tens of thousands of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import httpx

from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for

HELD = 160
OPEN_FILES = 150  # RLIMIT_NOFILE of the bot's process: a small container's
REQUEST_TIMEOUT = 3.0

# What a slow client sends and then holds: half the headers (no secret needed), or whole
# headers with the secret and half the body.
HALF_REQUESTS = [
    b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Le",
    b"GET /healthz HTTP/1.1\r\nHo",
    b"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n"
    b"X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: " + WEBHOOK_SECRET.encode() + b"\r\n\r\n{",
]


async def _closed_by_server(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(4096):
            pass


async def test_held_half_requests_neither_block_deliveries_nor_flood_the_log(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    bot = BotProcess(
        fake,
        tmp_path / "journal.db",
        open_files=OPEN_FILES,
        REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
    )
    await bot.start()
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for i in range(HELD):
            reader, writer = await asyncio.open_connection("127.0.0.1", bot.port)
            writer.write(HALF_REQUESTS[i % len(HALF_REQUESTS)])
            await writer.drain()
            held.append((reader, writer))

        async with httpx.AsyncClient(timeout=15) as client:
            started = time.monotonic()
            answer = await deliver(client, bot.url, "Merge Request Hook", hook_for(mr))
            latency = time.monotonic() - started
            assert answer.status_code == 202
            assert latency < 5.0, f"a valid delivery took {latency:.1f} s"
            assert (await client.get(f"{bot.url}/healthz")).status_code == 200

        # Every held connection is closed by the server within the request timeout.
        waited = time.monotonic()
        async with asyncio.timeout(REQUEST_TIMEOUT + 30):
            await asyncio.gather(*(_closed_by_server(reader) for reader, _ in held))
        closed_after = time.monotonic() - waited

        deadline = time.monotonic() + 30
        while [s["status"] for s in fake.statuses(project.id, mr.head_sha)][-1:] != ["success"]:
            assert time.monotonic() < deadline, fake.statuses(project.id, mr.head_sha)
            await asyncio.sleep(0.1)
    finally:
        for _, writer in held:
            writer.close()
        output = await bot.stop()

    lines = output.splitlines()
    closed = [json.loads(line) for line in lines if '"client connection closed"' in line]
    print(
        f"\n{HELD} half-requests held (open-file limit {OPEN_FILES}): delivery answered 202 in "
        f"{latency * 1000:.0f} ms; all closed {closed_after:.1f} s later; {len(lines)} log lines"
    )
    assert len(lines) < 100, "\n".join(lines[:20])
    # Closing is logged, collapsed: a few lines, then a count of those not logged.
    assert closed and len(closed) <= 20


def test_a_flood_of_one_warning_is_collapsed_with_a_count() -> None:
    import logging

    from bot.logs import RepeatFilter

    now = [0.0]
    repeats = RepeatFilter(burst=5, window=10.0, clock=lambda: now[0])

    def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.makeLogRecord({"name": "asyncio", "levelno": level, "msg": message})

    passed = [repeats.filter(record("socket.accept() out of system resource")) for _ in range(1000)]
    assert passed.count(True) == 5
    assert repeats.filter(record("another warning"))  # other lines are not hidden
    assert all(repeats.filter(record("delivery", logging.INFO)) for _ in range(100))
    now[0] = 10.0
    after = record("socket.accept() out of system resource")
    assert repeats.filter(after)
    assert after.repeated == 995  # type: ignore[attr-defined]
