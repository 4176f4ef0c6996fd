"""The command line, run as a user runs it: a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab
from tests.git_repos import run_cli_async
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for, wait_until
from tests.servers import free_port

SECRET_VALUES = {"GITLAB_TOKEN": "glpat-never-print-me", "WEBHOOK_SECRET": "hook-never-print-me"}


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"GITLAB_URL", *SECRET_VALUES}}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("missing", ["GITLAB_URL", "GITLAB_TOKEN", "WEBHOOK_SECRET"])
def test_serve_without_a_required_setting_exits_with_one_clear_line(missing: str) -> None:
    env = {"GITLAB_URL": "https://gitlab.example.com", **SECRET_VALUES}
    del env[missing]
    result = _run("serve", "--port", "0", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing in lines[0] and "not set" in lines[0]
    assert "Traceback" not in result.stderr
    for secret in SECRET_VALUES.values():
        assert secret not in result.stderr + result.stdout


def test_invalid_setting_is_named_without_echoing_secrets() -> None:
    env = {"GITLAB_URL": "not a url", **SECRET_VALUES, "HTTP_POOL_SIZE": "0"}
    result = _run("serve", env=env)
    assert result.returncode == 2
    assert "GITLAB_URL" in result.stderr and "HTTP_POOL_SIZE" in result.stderr
    for secret in SECRET_VALUES.values():
        assert secret not in result.stderr


def test_help_lists_serve() -> None:
    result = _run("--help", env={})
    assert result.returncode == 0
    assert "serve" in result.stdout


async def test_serve_runs_the_bot_as_a_real_process(fake: FakeGitLab, tmp_path: Path) -> None:
    """`compliance-bot serve` end to end: a real process, real HTTP both ways."""
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="Added stuff")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await deliver(client, bot.url, "Merge Request Hook", hook_for(mr))
        assert response.status_code == 202
        await wait_until(
            lambda: (
                [s["status"] for s in fake.statuses(project.id, mr.head_sha)][-1:]
                not in ([], ["running"])
            )
        )
        states = [s["status"] for s in fake.statuses(project.id, mr.head_sha)]
        assert states == ["failed"]
    finally:
        log = await bot.stop()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal (0.29+).
    assert bot.process is not None
    assert bot.process.returncode in (0, -signal.SIGTERM), log
    assert "Finished server process" in log
    assert "acting on GitLab as @compliance-bot" in log  # the token's user, checked at start
    assert fake.token not in log and WEBHOOK_SECRET not in log


async def test_serve_with_a_token_gitlab_refuses_exits_2_with_one_line(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    wrong = "glpat-revoked-never-print-me"
    code, out, err = await run_cli_async(
        "serve",
        "--port",
        str(free_port()),
        env={
            **os.environ,
            "GITLAB_URL": fake.base_url,
            "GITLAB_TOKEN": wrong,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "COMPLIANCE_DB": str(tmp_path / "journal.db"),
        },
    )
    log = out + err
    assert code == 2, log
    refusals = [line for line in log.splitlines() if "401" in line]
    assert len(refusals) == 1 and "GITLAB_TOKEN" in refusals[0], log
    assert "Traceback" not in log
    assert wrong not in log
    assert not (tmp_path / "journal.db").exists()  # it stopped before opening anything


async def test_serve_starts_and_journals_while_gitlab_is_unreachable(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    bot = BotProcess(fake, tmp_path / "journal.db", GITLAB_URL=nowhere)
    await bot.start()  # ready: the journal takes deliveries
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await deliver(client, bot.url, "Merge Request Hook", hook_for(mr))
        assert response.status_code == 202
    finally:
        log = await bot.stop()
    assert "did not answer at start" in log and "serving anyway" in log
