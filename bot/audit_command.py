"""`compliance-bot audit GROUP`: its arguments, progress and reports; the checking is
`bot/audit.py`'s.

    exit 0  every project (and member) is compliant or has only warnings
    exit 1  some are non-compliant (or, with --fail-on warning, have warnings), none errored
    exit 2  usage: missing settings, unreadable or invalid --config
    exit 3  some could not be checked, or the group could not be listed

Imports of the engine and the HTTP client stay inside the functions that use them, because
`register` runs for every `compliance-bot` invocation and `--help` must stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from bot.audit import (
    DEFAULT_CONCURRENCY,
    AuditOptions,
    Progress,
    UnreadablePolicy,
    load_policy,
    run_audit,
)
from bot.audit_model import EXIT_COMPLIANT, EXIT_ERROR, EXIT_USAGE, Row
from bot.audit_report import has_rich, render, render_json, summary_lines, write_report
from bot.model import Severity

if TYPE_CHECKING:
    from bot.audit_history import Previous
    from bot.config import Config
    from bot.settings import GitLabSettings

FORMATS = ("table", "json", "csv", "markdown", "html")
FAIL_ON = ("error", "warning")


# -- progress ------------------------------------------------------------------------------
# The reports are bot/audit_report.py's and bot/audit_html.py's, pure functions of the result.


class _RichProgress:
    """A progress bar on stderr. Refreshed by hand on each verdict, so rich starts no thread
    (one event loop, no threads: DESIGN.md, invariant 1)."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            auto_refresh=False,
            transient=True,
        )
        self._task = self._bar.add_task("auditing", total=0)
        self._total = 0
        self._last = 0.0

    def __enter__(self) -> _RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def found(self, count: int) -> None:
        self._total += count
        self._bar.update(self._task, total=self._total)
        self._refresh()

    def done(self, row: Row) -> None:
        self._bar.advance(self._task)
        self._refresh()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._bar.refresh()


@contextlib.contextmanager
def _progress(stream: TextIO) -> Iterator[Progress | None]:
    if not (stream.isatty() and has_rich()):
        yield None
        return
    with _RichProgress(stream) as bar:
        yield bar


# -- the command ---------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "audit",
        help="check every project of a group against the repository rules",
        description="Check every project of a GitLab group (subgroups included) against the "
        "repository rules: README, LICENSE, templates, description, topics. Needs GITLAB_URL "
        "and GITLAB_TOKEN. Each project is compliant, has warnings, is non-compliant, or is an "
        "error (could not be checked). Exit code 0: none non-compliant; 1: some non-compliant "
        "(or with warnings, given --fail-on warning); 3: some could not be checked.",
    )
    parser.add_argument("group", help="the group's full path (acme/platform) or numeric id")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="judge every project by this config (the .gitlab/compliance.yml format) instead "
        "of each project's own file on its default branch",
    )
    parser.add_argument(
        "--include-archived", action="store_true", help="audit archived projects too"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"projects checked at the same time (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output format; html is one self-contained page (use it with --output)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the report to FILE instead of standard output",
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="error",
        help="the least severe finding that fails the run (exit code 1); default: error, so "
        "projects with only warnings exit 0",
    )
    parser.add_argument(
        "--only-failing",
        action="store_true",
        help="list only the rows that fail the run: non-compliant and errored ones (with "
        "--fail-on warning, those with warnings too); the summary still counts all",
    )
    parser.add_argument(
        "--save",
        type=Path,
        metavar="FILE",
        help="keep this run in FILE (its JSON report, every row) for a later --compare",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="say what got better and worse since the run saved in FILE by --save (a "
        "missing FILE is a first run: nothing to compare)",
    )
    parser.add_argument(
        "--members",
        action="store_true",
        help="also check that each member has a profile README (a public project named "
        "like the username, with a README)",
    )
    parser.add_argument(
        "--waivers",
        action="store_true",
        help="list the waivers given on the group's MRs (active, expired, withdrawn: "
        "project, MR, rule, by whom, why, until when) from the bot's journal, instead of "
        "auditing the projects",
    )
    parser.add_argument(
        "--journal",
        metavar="COMPLIANCE_DB",
        help="with --waivers: the bot's journal, a SQLite file or a postgresql:// URL "
        "(default: $COMPLIANCE_DB)",
    )
    parser.set_defaults(run=audit_command)


def _load_policy(path: Path) -> Config | int:
    from bot.config import ConfigError

    try:
        return load_policy(path)
    except UnreadablePolicy as exc:
        print(f"compliance-bot: --config {path}: cannot read: {exc}", file=sys.stderr)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"compliance-bot: {problem}", file=sys.stderr)
    return EXIT_USAGE


def _writable_path(option: str, path: Path | None) -> bool:
    """Whether FILE can be written where it is asked for; checked before the audit runs,
    so that a long audit does not end on a typo."""
    if path is None:
        return True
    if path.is_dir() or not path.parent.is_dir():
        where = "is a directory" if path.is_dir() else f"no directory {path.parent}"
        print(f"compliance-bot: {option} {path}: {where}", file=sys.stderr)
        return False
    return True


def _write_file(path: Path, text: str) -> str | None:
    """Write atomically (a scheduled run never leaves half a file); the reason on failure."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        return f"cannot write: {exc.strerror}"
    return None


def audit_command(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    from pydantic import ValidationError

    from bot.audit_history import HistoryError, load_previous
    from bot.settings import GitLabSettings, settings_error_line

    try:
        settings = GitLabSettings()  # GITLAB_URL and GITLAB_TOKEN come from the environment
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    if args.waivers:
        return _waivers_command(args, settings)
    policy = None
    if args.config is not None:
        loaded = _load_policy(args.config)
        if isinstance(loaded, int):
            return loaded
        policy = loaded
    if not (_writable_path("--output", args.output) and _writable_path("--save", args.save)):
        return EXIT_USAGE
    previous: Previous | None = None
    if args.compare is not None:
        try:
            previous = load_previous(args.compare, args.group)
        except HistoryError as exc:
            print(f"compliance-bot: --compare {args.compare}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if previous is None:
            print(
                f"compliance-bot: --compare {args.compare}: no such file yet; nothing to "
                "compare with (a first run)",
                file=sys.stderr,
            )
    options = AuditOptions(
        group=args.group,
        policy=policy,
        include_archived=args.include_archived,
        concurrency=args.concurrency,
        members=args.members,
    )
    # The CLI runs it on the process's one event loop; ^C ends it with "audit interrupted"
    # and exit code 130 (bot/cli.py).
    return _audit_and_report(settings, options, args, previous)


async def _audit_and_report(
    settings: GitLabSettings,
    options: AuditOptions,
    args: argparse.Namespace,
    previous: Previous | None,
) -> int:
    from bot.audit_history import compare

    with _progress(sys.stderr) as progress:
        result = await run_audit(settings, options, progress)
    result.fail_on = Severity(args.fail_on)
    result.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    if previous is not None:
        result.comparison = compare(previous, result, str(args.compare))
    code = result.exit_code()
    if args.output is None:
        write_report(result, args.format, sys.stdout, sys.stderr, only_failing=args.only_failing)
    else:
        report = render(result, args.format, only_failing=args.only_failing)
        failure = _write_file(args.output, report)
        if failure:
            print(f"compliance-bot: --output {args.output}: {failure}", file=sys.stderr)
            code = EXIT_USAGE
        lines = summary_lines(result) if args.format == "csv" else []
        lines += [f"compliance-bot: {e}" for e in result.errors]
        sys.stderr.write("".join(f"{line}\n" for line in lines))
    if args.save is not None:
        failure = _write_file(args.save, render_json(result) + "\n")
        if failure:
            print(f"compliance-bot: --save {args.save}: {failure}", file=sys.stderr)
            code = EXIT_USAGE
    return code


def _waivers_command(
    args: argparse.Namespace, settings: GitLabSettings
) -> int | Coroutine[Any, Any, int]:
    import os

    from bot import audit_waivers

    journal = args.journal or os.environ.get("COMPLIANCE_DB")
    if not audit_waivers.usable_journal(journal):
        return EXIT_USAGE
    assert journal is not None
    return _waivers_report(args, settings, journal)


async def _waivers_report(args: argparse.Namespace, settings: GitLabSettings, journal: str) -> int:
    from bot import audit_waivers
    from bot.gitlab import GitLabError

    try:
        rows = await audit_waivers.run(settings, journal, args.group, now=time.time())
    except (GitLabError, ValueError) as exc:
        print(f"compliance-bot: could not list the waivers: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(audit_waivers.render(rows, args.format))
    return EXIT_COMPLIANT
