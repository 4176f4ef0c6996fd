"""The command line, run as a user runs it: a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
