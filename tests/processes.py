"""The bot as a real process: `python -m bot.cli serve`, started, killed and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab
from tests.servers import free_port


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

    def _limit_open_files(self) -> None:
        if self.open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "serve", "--port", str(self.port),
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=self._limit_open_files if self.open_files is not None else None,
        )  # fmt: skip
        # Read the logs as they come: a full pipe would block the bot's writes, and its loop.
        self._reader = asyncio.get_running_loop().create_task(self._read(self.process))
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                if self.process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
        raise RuntimeError(f"bot did not start: {await self._drain()}")

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
        self.process.kill()
        await self.process.wait()
        await self._drain()

    async def stop(self) -> str:
        """SIGTERM and wait: the graceful shutdown."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
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
