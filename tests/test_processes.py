"""No process outlives the test that started it, even when the test fails or its run dies.

Each case runs a small pytest session of its own, in a subprocess, whose test starts real
`compliance-bot serve` processes (and uses the PostgreSQL server) and then fails, or kills
its own run outright. Once that session is over, none of what it started may still run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from tests.postgres import server_binaries

ROOT = Path(__file__).resolve().parent.parent

INNER_CONFTEST = """
from tests.conftest import _no_process_left_behind, fake, postgres, pytest_configure
"""

INNER_TESTS = """
import os
import signal
from pathlib import Path

from tests.processes import BotProcess


async def _start_bots(fake, tmp_path):
    bots = [BotProcess(fake, tmp_path / f"journal-{i}.db") for i in range(2)]
    for bot in bots:
        await bot.start()
    pids = " ".join(str(bot.process.pid) for bot in bots)
    Path(os.environ["BOT_PIDS"]).write_text(pids)


async def test_fails_with_bots_running(fake, tmp_path):
    await _start_bots(fake, tmp_path)
    raise AssertionError("the test body fails while its bots run")


def test_fails_with_postgresql_running(postgres):
    if postgres is None:
        return
    Path(os.environ["POSTGRES_URL"]).write_text(postgres.url())
    raise AssertionError("the test body fails while the server runs")


async def test_the_run_itself_is_killed(fake, tmp_path):
    await _start_bots(fake, tmp_path)
    os.kill(os.getpid(), signal.SIGKILL)  # no teardown, no finally: only the kernel is left
"""


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _run_inner(tmp_path: Path, test: str) -> tuple[int, str]:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BOT_PIDS": str(tmp_path / "pids"),
        "POSTGRES_URL": str(tmp_path / "postgres"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-c", str(ROOT / "pyproject.toml"), f"{tmp_path / 'test_inner.py'}::{test}",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def _pids(tmp_path: Path, output: str) -> list[int]:
    assert (tmp_path / "pids").exists(), output
    return [int(pid) for pid in (tmp_path / "pids").read_text().split()]


async def test_a_failing_test_leaves_no_bot_running(tmp_path: Path) -> None:
    code, output = await _run_inner(tmp_path, "test_fails_with_bots_running")
    assert code == 1 and "the test body fails while its bots run" in output, output
    pids = _pids(tmp_path, output)
    assert len(pids) == 2
    assert [pid for pid in pids if _alive(pid)] == [], output


async def test_a_killed_test_run_leaves_no_bot_running(tmp_path: Path) -> None:
    code, output = await _run_inner(tmp_path, "test_the_run_itself_is_killed")
    assert code == -9, output
    pids = _pids(tmp_path, output)
    # The kernel delivers the parent-death signal as the run dies; reaping takes a moment.
    deadline = time.monotonic() + 60
    while alive := [pid for pid in pids if _alive(pid)]:
        assert time.monotonic() < deadline, alive
        await asyncio.sleep(0.05)


async def test_a_failing_test_leaves_no_postgresql_running(tmp_path: Path) -> None:
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    code, output = await _run_inner(tmp_path, "test_fails_with_postgresql_running")
    assert code == 1 and "the test body fails while the server runs" in output, output
    url = (tmp_path / "postgres").read_text()
    with pytest.raises(psycopg.OperationalError):
        await (await psycopg.AsyncConnection.connect(url, connect_timeout=5)).close()
