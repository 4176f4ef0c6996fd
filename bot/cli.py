"""The `compliance-bot` command. The only place where an event loop is started."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

EXIT_USAGE = 2


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

    config = commands.add_parser("config", help="validate a config file or print its schema")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    validate = config_commands.add_parser(
        "validate", help="check a .gitlab/compliance.yml; errors as FILE:LINE:COL: message"
    )
    validate.add_argument("file", help="the YAML file to check")
    config_commands.add_parser("schema", help="print the config's JSON Schema")
    return parser


def config_validate(file: str) -> int:
    from bot.config import ConfigError, load

    try:
        with open(file, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        load(text, file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        return 1
    print(f"{file}: valid")
    return 0


def config_schema() -> int:
    from bot.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def serve(host: str, port: int, log_level: str) -> int:
    import uvicorn

    from bot.app import create_app
    from bot.config import ConfigError
    from bot.settings import Settings, settings_error_line

    try:
        settings = Settings()  # the fields come from the environment
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request at INFO; the bot logs what matters about its calls itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app = create_app(settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"compliance-bot: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"compliance-bot: COMPLIANCE_CONFIG: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    # uvicorn.run starts the process's one event loop (asyncio.run inside).
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        server_header=False,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args.host, args.port, args.log_level)
    if args.command == "config" and args.config_command == "validate":
        return config_validate(args.file)
    if args.command == "config" and args.config_command == "schema":
        return config_schema()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
