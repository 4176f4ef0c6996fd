"""The `compliance-bot` command. The only place where an event loop is started."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
# An idle keep-alive connection is closed after this long (uvicorn's default, made explicit).
KEEP_ALIVE_SECONDS = 5
T = TypeVar("T")

# Modules that add a command: each has `register(commands: argparse._SubParsersAction)`.
COMMAND_MODULES: tuple[str, ...] = ("bot.audit_command", "bot.check_command", "bot.hooks")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compliance-bot", description="Check GitLab pushes and merge requests."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the webhook server",
        description="Run the webhook server. Needs GITLAB_URL, GITLAB_TOKEN and "
        "WEBHOOK_SECRET in the environment.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    serve.add_argument(
        "--log-format", default="json", choices=["json", "text"], help="log line format"
    )
    serve.set_defaults(
        run=lambda args: serve_command(args.host, args.port, args.log_level, args.log_format)
    )

    config = commands.add_parser("config", help="validate a config file or print its schema")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser(
        "validate", help="check a .gitlab/compliance.yml; errors as FILE:LINE:COL: message"
    )
    validate.add_argument("file", help="the YAML file to check")
    validate.set_defaults(run=lambda args: config_validate(args.file))
    schema = config_commands.add_parser("schema", help="print the config's JSON Schema")
    schema.set_defaults(run=lambda args: config_schema())
    explain = config_commands.add_parser(
        "explain", help="print the resolved config, with where each value came from"
    )
    explain.add_argument("file", nargs="?", help="the config (default: .gitlab/compliance.yml)")
    explain.add_argument("--policy", action="append", default=[], metavar="FILE")
    explain.add_argument("--project", help="resolve as the server does for this project")
    explain.set_defaults(
        run=lambda args: __import__("bot.policy").policy.explain_command(
            args.file, args.policy, args.project
        )
    )

    # Each further command lives in its own module, which adds its parser with
    # `register(commands)` and sets `run` to a function of the parsed args returning the exit
    # code. Imports stay inside `register` callers' modules, so `--help` stays fast.
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def config_validate(file: str) -> int | Coroutine[Any, Any, int]:
    """With GITLAB_URL and GITLAB_TOKEN in the environment (as `config explain --project`),
    every `extends` target is read from GitLab and checked too; without, its syntax only."""
    import os

    from bot.config import ConfigError, read_config_file
    from bot.policy import validate_file

    try:
        text = read_config_file(file)
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        return _invalid(exc)
    if os.environ.get("GITLAB_URL") and os.environ.get("GITLAB_TOKEN"):
        return _validate_following_extends(file, text)
    try:
        validate_file(text, file)  # `extends` by its syntax; a policy file's `locked` too
    except ConfigError as exc:
        return _invalid(exc)
    print(f"{file}: valid")
    return 0


def _invalid(exc: Exception) -> int:
    from bot.config import ConfigError

    problems = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else []
    if str(exc) not in problems and not str(exc).startswith("invalid "):
        print(exc)  # "could not read extends target `…`: invalid …", above the target's lines
    for problem in problems:
        print(problem)
    return EXIT_USAGE  # as `check` exits on an invalid config


async def _validate_following_extends(file: str, text: str) -> int:
    from bot.config import ConfigError
    from bot.gitlab import GitLabError, open_gitlab
    from bot.policy import validate_following_extends
    from bot.settings import GitLabSettings, settings_error_line

    try:
        settings = GitLabSettings()
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        async with open_gitlab(settings) as gitlab:
            await validate_following_extends(text, file, gitlab)
    except ConfigError as exc:
        return _invalid(exc)
    except GitLabError as exc:  # one line, never a traceback (it could show the token)
        print(f"compliance-bot: could not follow extends: {exc}", file=sys.stderr)
        return 3
    print(f"{file}: valid")
    return 0


def config_schema() -> int:
    from bot.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def serve_command(host: str, port: int, log_level: str, log_format: str = "json") -> int:
    import uvicorn

    from bot import logs
    from bot.app import create_app
    from bot.config import ConfigError
    from bot.settings import Settings, settings_error_line

    try:
        settings = Settings()  # the fields come from the environment
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    secrets = [settings.gitlab_token.get_secret_value(), settings.webhook_secret.get_secret_value()]
    if settings.webhook_signing_token is not None:
        secrets.append(settings.webhook_signing_token.get_secret_value())
    logs.configure(level=log_level, json_lines=log_format == "json", secrets=secrets)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"compliance-bot: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"compliance-bot: COMPLIANCE_CONFIG: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    from bot.connections import ConnectionLimits, effective_max_connections, guarded_protocol

    # Slow or idle clients cannot hold the server: a deadline per request and a bound on
    # connections (bot/connections.py), on top of uvicorn's keep-alive timeout.
    limits = ConnectionLimits(
        request_seconds=settings.request_timeout_seconds,
        max_connections=effective_max_connections(
            settings.max_connections, other_files=settings.http_pool_size + settings.db_pool_size
        ),
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            proxy_headers=True,
            server_header=False,
            # The root logger set up above formats uvicorn's lines too; the bot logs one line
            # per delivery itself, so uvicorn's access log would only repeat it.
            log_config=None,
            access_log=False,
            http=guarded_protocol(limits),
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    # The lifespan asks GitLab whose token it holds; on a 401 it stops the server before it
    # takes a request (bot/startup.py), and `serve` exits 2 with the line it logged.
    app.state.stop_serving = lambda: setattr(server, "should_exit", True)
    # server.run starts the process's one event loop (asyncio.run inside).
    server.run()
    if getattr(app.state, "refused", None):
        return EXIT_USAGE
    return 0


def run_event_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """The CLI's one event loop (`serve` has uvicorn's): the loop starts in this module only."""
    return asyncio.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. A command's `run` answers its exit code, or a coroutine of it, which
    runs on the process's one event loop; so the command modules never import this one."""
    args = _parser().parse_args(argv)
    outcome: int | Coroutine[Any, Any, int] = args.run(args)
    if isinstance(outcome, int):
        return outcome
    try:
        code: int = run_event_loop(outcome)
        return code
    except KeyboardInterrupt:
        print(f"compliance-bot: {args.command} interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
