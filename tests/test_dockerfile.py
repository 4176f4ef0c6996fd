"""The Dockerfile, checked statically (no Docker engine here): what it runs exists, it does
not run as root, and its health check asks a path the app serves."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from starlette.routing import Route

from bot.cli import _parser
from tests.conftest import bot_settings
from tests.fake_gitlab import FakeGitLab

DOCKERFILE = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_multi_stage_build() -> None:
    assert sum(1 for k, _ in _instructions() if k == "FROM") >= 2
    assert any(k == "COPY" and "--from=build" in v for k, v in _final_stage())


def test_runs_as_a_non_root_user() -> None:
    users = [v for k, v in _final_stage() if k == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_command_is_a_real_cli_command() -> None:
    [cmd] = [json.loads(v) for k, v in _final_stage() if k == "CMD"]
    assert cmd[0] == "compliance-bot"
    args = _parser().parse_args(cmd[1:])
    assert args.command == "serve" and args.host == "0.0.0.0"  # noqa: S104 (in a container)


def test_healthcheck_asks_a_path_the_app_serves() -> None:
    [check] = [v for k, v in _final_stage() if k == "HEALTHCHECK"]
    path = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", check)
    assert path is not None
    [cmd] = [json.loads(v) for k, v in _final_stage() if k == "CMD"]
    assert path.group(1) == cmd[cmd.index("--port") + 1]
    from bot.app import create_app

    fake = FakeGitLab()
    fake.base_url = "http://127.0.0.1:1"
    app = create_app(bot_settings(fake))
    served = {r.path for r in app.routes if isinstance(r, Route)}
    assert path.group(2) == "/healthz" and path.group(2) in served


def test_the_journal_is_on_a_volume() -> None:
    volumes = [json.loads(v) for k, v in _final_stage() if k == "VOLUME"]
    env = " ".join(v for k, v in _final_stage() if k == "ENV")
    db = dict(shlex.split(part)[0].split("=", 1) for part in env.split() if "=" in part)
    assert any(db["COMPLIANCE_DB"].startswith(v.rstrip("/") + "/") for vs in volumes for v in vs)
