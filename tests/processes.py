"""The bot as a real process: `python -m bot.cli serve`, started, killed and restarted.

Every process started here is stopped whatever the test does: each runs in a process group
of its own, `stop_every_bot` (an autouse fixture in conftest calls it after every test,
passed or failed) kills the groups still alive, and on Linux the kernel kills a bot whose
test run itself dies (PR_SET_PDEATHSIG), so no `serve` outlives the run that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab
from tests.servers import free_port

# How long a bot may take to start answering /readyz on a busy machine. It is a bound on a
# failure, not a pause: start() returns as soon as the bot is ready.
START_SECONDS = 120.0
# prctl(2): PR_SET_PDEATHSIG, "the signal the calling process gets when its parent dies".
_PR_SET_PDEATHSIG = 1

_alive: set[BotProcess] = set()


async def wait_for_readyz(
    client: httpx.AsyncClient, url: str, status: int = 200, seconds: float = 30.0
) -> None:
    """Wait until the bot at `url` answers /readyz with `status` (an event, not a guess at
    how long it takes); fail with its last answer once `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (answer := await client.get(f"{url}/readyz")).status_code != status:
        assert time.monotonic() < deadline, (answer.status_code, answer.text)
        await asyncio.sleep(0.05)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """In the child: the kernel sends SIGKILL when the test run that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_every_bot() -> int:
    """Kill every bot process group still running (a test failed before stopping it).
    Synchronous, so it works in any teardown; returns how many were killed."""
    killed = 0
    for bot in list(_alive):
        if bot.kill_group():
            killed += 1
    _alive.clear()
    return killed


class BotProcess:
    def __init__(
        self, fake: FakeGitLab, db: Path | str, *, open_files: int | None = None, **env: str
    ) -> None:
        # `open_files`: the process's RLIMIT_NOFILE, as a container or systemd unit may set it.
        self.open_files = open_files
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GITLAB_URL": fake.base_url,
            "GITLAB_TOKEN": fake.token,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "COMPLIANCE_DB": str(db),
            "RETRY_BASE_DELAY": "0.05",
            "RETRY_FAILED_AFTER_SECONDS": "0.5",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None
        self.output = b""
        self._reader: asyncio.Task[None] | None = None

    def _before_exec(self) -> None:  # pragma: no cover - runs in the child, before exec
        _die_with_parent()
        if self.open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port),
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=self._before_exec,
        )  # fmt: skip
        _alive.add(self)
        # Read the logs as they come: a full pipe would block the bot's writes, and its loop.
        self._reader = asyncio.get_running_loop().create_task(self._read(self.process))
        if not await self.wait_ready(START_SECONDS):
            self.kill_group()
            raise RuntimeError(f"bot did not start: {await self._drain()}")

    async def wait_ready(self, seconds: float) -> bool:
        """Wait until /readyz answers 200 (the journal is writable); False if the process
        exited or the bound passed first."""
        assert self.process is not None
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(timeout=10) as client:
            while time.monotonic() < deadline and self.process.returncode is None:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return True
                await asyncio.sleep(0.05)
        return False

    async def wait_for_log(self, text: str, seconds: float = 60.0) -> None:
        """Wait until the bot has logged `text` (an event, not a guess at how long it takes)."""
        deadline = time.monotonic() + seconds
        while text.encode() not in self.output:
            assert time.monotonic() < deadline, f"the bot never logged {text!r}"
            await asyncio.sleep(0.05)

    def kill_group(self) -> bool:
        """SIGKILL the bot's process group, if it is still running."""
        _alive.discard(self)
        if self.process is None or self.process.returncode is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
            return True
        return False

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            self.output += chunk

    async def _drain(self) -> str:
        if self._reader is not None:
            await self._reader
        return self.output.decode(errors="replace")

    async def kill(self) -> None:
        """kill -9: no shutdown, no flush, nothing."""
        assert self.process is not None
        self.kill_group()
        await self.process.wait()
        await self._drain()

    async def stop(self) -> str:
        """SIGTERM and wait: the graceful shutdown."""
        assert self.process is not None
        try:
            if self.process.returncode is None:
                self.process.send_signal(signal.SIGTERM)
                await self.process.wait()
        finally:
            self.kill_group()  # cancelled or timed out meanwhile: no process is left behind
        return await self._drain()


async def deliver(
    client: httpx.AsyncClient, url: str, event: str, payload: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await client.post(
        f"{url}/webhook",
        content=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": WEBHOOK_SECRET,
            "Idempotency-Key": key or str(uuid.uuid4()),
        },
    )
