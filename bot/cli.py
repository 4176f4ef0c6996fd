"""The `compliance-bot` command. The only place where an event loop is started."""

from __future__ import annotations

import argparse
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
    return parser


def serve(host: str, port: int, log_level: str) -> int:
    import uvicorn

    from bot.app import create_app
    from bot.settings import Settings, settings_error_line

    try:
        settings = Settings()  # the fields come from the environment
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # uvicorn.run starts the process's one event loop (asyncio.run inside).
    uvicorn.run(
        create_app(settings),
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
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
