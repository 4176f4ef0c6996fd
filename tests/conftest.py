"""Shared harness: the fake GitLab and the bot, both served over real HTTP on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.app import create_app
from bot.settings import Settings
from tests.fake_gitlab import FakeGitLab
from tests.postgres import PostgresServer, postgres_server
from tests.servers import serving

WEBHOOK_SECRET = "hook-secret-5f0c"


def bot_settings(fake: FakeGitLab, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gitlab_url": fake.base_url,
        "gitlab_token": fake.token,
        "webhook_secret": WEBHOOK_SECRET,
        # Fast retries keep failure tests short; the bounds are what is under test.
        "retry_attempts": 3,
        "retry_base_delay": 0.01,
        "retry_total_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


def delivery_calls(fake: FakeGitLab) -> list[Any]:
    """What the bot asked GitLab, less the one GET /user it makes as it starts
    (bot/startup.py), which is part of no delivery."""
    return [r for r in fake.requests if (r.method, r.path) != ("GET", "/api/v4/user")]


@dataclass
class Bot:
    url: str
    app: Starlette
    client: httpx.AsyncClient

    async def send(
        self,
        event: str,
        payload: dict[str, Any] | bytes,
        *,
        token: str | None = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Deliver a webhook the way GitLab does (its delivery headers included)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/18.6.0",
            "X-Gitlab-Event": event,
            "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "X-Gitlab-Instance": "https://gitlab.example.com",
            "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
        }
        if token is not None:
            sent["X-Gitlab-Token"] = token
        sent.update(headers or {})
        return await self.client.post(f"{self.url}/webhook", content=body, headers=sent)

    async def settle(self) -> None:
        """Wait until every accepted event has been checked and published."""
        await self.app.state.runtime.runner.idle()


@contextlib.asynccontextmanager
async def running_bot(fake: FakeGitLab, **overrides: Any) -> AsyncIterator[Bot]:
    with tempfile.TemporaryDirectory(prefix="compliance-bot-") as tmp:
        overrides.setdefault("compliance_db", Path(tmp) / "journal.db")
        app = create_app(bot_settings(fake, **overrides))
        async with serving(app) as url, httpx.AsyncClient(timeout=10) as client:
            yield Bot(url=url, app=app, client=client)


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """A test that fails before it stops its `serve` processes still leaves none running."""
    # Imported here: tests.processes imports this module.
    from tests.processes import stop_every_bot

    try:
        yield
    finally:
        stop_every_bot()


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: fixtures'
    `finally` blocks run, so bots and the PostgreSQL server are stopped, not orphaned."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGitLab]:
    gitlab = FakeGitLab()
    async with gitlab.serve():
        yield gitlab


@pytest.fixture
async def bot(fake: FakeGitLab) -> AsyncIterator[Bot]:
    async with running_bot(fake) as running:
        yield running


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    """One throwaway PostgreSQL server for the session (None: binaries missing)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer | None) -> str:
    """A fresh database on the session's server."""
    if postgres is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """COMPLIANCE_DB for each engine: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "journal.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
