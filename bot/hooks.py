"""`compliance-bot hooks install|status`: the bot's webhook on every project of a group.

    compliance-bot hooks install (--group G | --project P) --url URL [--dry-run] [--format F]
    compliance-bot hooks status  (--group G | --project P) --url URL [--fix] [--format F]

The bot's hook on a project is the project hook whose URL is `--url`. It must send push,
merge request and comment events, carry `WEBHOOK_SECRET` as its token, and verify SSL.
`install` creates it where it is missing and corrects it where it differs; a second run
changes nothing and keeps every hook id. `status` reports, per project, a missing hook, wrong
events, SSL verification off, a branch filter on pushes, and a hook GitLab disabled after
failed deliveries; `--fix` repairs them, re-enabling a disabled hook by updating it and then
sending GitLab's test request, which re-enables it when the bot answers 2xx.

A project the token cannot administer (hooks need the Maintainer role) is a row with the
reason: it never stops the run and is never shown as done.

    exit 0  every project has the bot's hook, as it should be (after the changes made)
    exit 1  (status without --fix) something to fix
    exit 2  usage: missing settings, no --group or --project
    exit 3  something could not be read or changed

This runs on python-gitlab, synchronously, in the CLI's own process: it is an operator's
command, never the server's loop. The decisions are pure functions of what GitLab listed
(`judge_hooks`), tested with literals.
API: https://docs.gitlab.com/api/project_webhooks/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gitlab as python_gitlab

EXIT_OK = 0
EXIT_TO_FIX = 1
EXIT_USAGE = 2
EXIT_ERROR = 3

FORMATS = ("table", "json", "markdown")

# The events the bot acts on, as the project hook API names them
# (gitlabhq: lib/api/project_hooks.rb `common_hook_parameters`, lib/api/entities/project_hook.rb).
REQUIRED_EVENTS = ("push_events", "merge_requests_events", "note_events")
# GitLab's test request for a hook sends an event of one trigger (lib/api/project_hooks.rb
# `post ":id/hooks/:hook_id/test/:trigger"`); a push is one the bot takes with a 2xx.
TEST_TRIGGER = "push_events"


class State(StrEnum):
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    DISABLED = "disabled"
    ERROR = "error"


class Action(StrEnum):
    NONE = "none"
    CREATE = "create"
    UPDATE = "update"
    UPDATE_AND_TEST = "update and test"


@dataclass(frozen=True)
class Judgement:
    """What the project's hooks show, and what would make the bot's hook right."""

    state: State
    problems: tuple[str, ...] = ()
    hook_id: int | None = None
    action: Action = Action.NONE


@dataclass
class Row:
    project: str
    state: str
    problems: list[str] = field(default_factory=list)
    hook_id: int | None = None
    action: str = "none"
    done: bool = False  # the action was carried out (never for --dry-run or status)
    error: str | None = None


def normalized_url(url: str) -> str:
    return url.strip().rstrip("/")


def desired_attributes(url: str) -> dict[str, Any]:
    """The hook the bot needs (the token is added where it is sent, never printed)."""
    return {
        "url": url,
        **dict.fromkeys(REQUIRED_EVENTS, True),
        "enable_ssl_verification": True,
        "push_events_branch_filter": "",
    }


def _disabled(hook: Mapping[str, Any], now: datetime) -> str | None:
    # app/models/concerns/web_hooks/auto_disabling.rb: `alert_status` is :executable,
    # :temporarily_disabled (failing, backed off until `disabled_until`) or :disabled (40
    # failures in a row: permanently). Versions before `alert_status` show `disabled_until`.
    status = hook.get("alert_status")
    if status == "disabled":
        return "disabled by GitLab after repeated failed deliveries"
    until = hook.get("disabled_until")
    if status == "temporarily_disabled" or until:
        moment = _parse_time(until)
        if moment is None or moment >= now or status == "temporarily_disabled":
            when = f" until {until}" if until else ""
            return f"disabled by GitLab{when} after failed deliveries"
    return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def judge_hooks(hooks: Sequence[Mapping[str, Any]], url: str, now: datetime) -> Judgement:
    """The bot's hook among a project's hooks (the first whose URL is `url`), judged."""
    wanted = normalized_url(url)
    ours = [h for h in hooks if normalized_url(str(h.get("url", ""))) == wanted]
    if not ours:
        return Judgement(State.MISSING, ("no hook to the bot",), action=Action.CREATE)
    hook = ours[0]
    hook_id = int(hook["id"])
    problems = [f"{event} off" for event in REQUIRED_EVENTS if hook.get(event) is not True]
    if hook.get("enable_ssl_verification") is not True:
        problems.append("SSL verification off")
    if hook.get("push_events_branch_filter"):
        problems.append(f"push events only for branches {hook['push_events_branch_filter']!r}")
    disabled = _disabled(hook, now)
    if disabled is not None:
        return Judgement(State.DISABLED, (*problems, disabled), hook_id, Action.UPDATE_AND_TEST)
    if problems:
        return Judgement(State.WRONG, tuple(problems), hook_id, Action.UPDATE)
    return Judgement(State.OK, (), hook_id)


# -- I/O: python-gitlab, in the CLI's process ------------------------------------------------


def _projects(gl: python_gitlab.Gitlab, args: argparse.Namespace) -> Iterator[Any]:
    if args.project:
        yield gl.projects.get(args.project)
        return
    group = gl.groups.get(args.group)
    # https://docs.gitlab.com/api/groups/#list-projects : subgroups included, shared projects
    # left to their own group, archived projects (read-only, no events) left out.
    listed = group.projects.list(
        iterator=True, include_subgroups=True, with_shared=False, archived=False
    )
    for listing in sorted(listed, key=lambda p: str(p.path_with_namespace)):
        # A group's listing has no hooks manager: the project's own object has (no request).
        project = gl.projects.get(listing.id, lazy=True)
        project.path_with_namespace = listing.path_with_namespace
        yield project


def _reason(exc: Exception) -> str:
    import gitlab as python_gitlab

    if isinstance(exc, python_gitlab.GitlabError):
        code = exc.response_code
        if code in (401, 403):
            return f"{code}: the token cannot administer this project's hooks (needs Maintainer)"
        if code == 404:
            return "404: not found, or not visible to the token"
        message = str(exc.error_message)[:200]
        return f"{code}: {message}" if code else message
    first_line = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line[:200]}"


def _act(
    project: Any, judgement: Judgement, url: str, secret: str, *, reset_token: bool
) -> Judgement:
    """Carry out the action; the returned judgement says what now holds."""
    attributes = {**desired_attributes(url), "token": secret}
    if judgement.action is Action.CREATE:
        hook = project.hooks.create(attributes)
        return Judgement(State.OK, (), int(hook.id), Action.CREATE)
    if judgement.action is Action.NONE and not reset_token:
        return judgement
    assert judgement.hook_id is not None
    hook = project.hooks.get(judgement.hook_id)
    for key, value in attributes.items():
        setattr(hook, key, value)
    hook.save()
    action = judgement.action if judgement.action is not Action.NONE else Action.UPDATE
    if judgement.action is Action.UPDATE_AND_TEST:
        # A 2xx from the bot re-enables the hook (WebHooks::AutoDisabling#enable!, run by
        # WebHookService on a successful delivery); anything else is a 422 with the reason.
        hook.test(TEST_TRIGGER)
    return Judgement(State.OK, (), judgement.hook_id, action)


def run_hooks(
    gl: python_gitlab.Gitlab,
    args: argparse.Namespace,
    secret: str,
    *,
    change: bool,
    now: datetime | None = None,
) -> list[Row]:
    rows: list[Row] = []
    try:
        projects = list(_projects(gl, args))
    except Exception as exc:  # any failure to list is a row, never a pass
        target = args.project or args.group
        return [Row(project=str(target), state=State.ERROR, error=_reason(exc))]
    for project in projects:
        name = str(getattr(project, "path_with_namespace", project.id))
        try:
            hooks = [hook.asdict() for hook in project.hooks.list(iterator=True)]
        except Exception as exc:  # this project's row; the run goes on
            rows.append(Row(project=name, state=State.ERROR, error=_reason(exc)))
            continue
        judgement = judge_hooks(hooks, args.url, now or datetime.now(UTC))
        row = Row(
            project=name,
            state=judgement.state,
            problems=list(judgement.problems),
            hook_id=judgement.hook_id,
            action=judgement.action,
        )
        if change and (judgement.action is not Action.NONE or args.reset_token):
            try:
                after = _act(project, judgement, args.url, secret, reset_token=args.reset_token)
            except Exception as exc:  # this project's row; the run goes on
                row.error = _reason(exc)
            else:
                row.done, row.hook_id, row.action = True, after.hook_id, after.action
        rows.append(row)
    return rows


# -- output ------------------------------------------------------------------------------------


def _markdown_cell(text: str) -> str:
    # Names come from GitLab: no markup, no table breaks.
    escaped = "".join(f"\\{c}" if c in "\\`*_{}[]<>()#+!|~&$%@" else c for c in text)
    return escaped.replace("\n", " ")


def render(rows: Sequence[Row], format_name: str, *, change: bool, dry_run: bool) -> str:
    if format_name == "json":
        return json.dumps({"projects": [asdict(row) for row in rows]}, indent=2) + "\n"

    def outcome(row: Row) -> str:
        if row.error:
            return f"could not {row.action if row.action != 'none' else 'read'}: {row.error}"
        if row.action == "none":
            return "nothing to do"
        if row.done:
            return {"create": "created", "update": "updated"}.get(row.action, "updated, tested")
        return f"would {row.action}" if dry_run or not change else row.action

    lines: list[str] = []
    if format_name == "markdown":
        lines += [
            "| Project | Hook | State | Problems | Outcome |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in rows:
            cells = [
                row.project,
                str(row.hook_id or ""),
                row.state,
                "; ".join(row.problems),
                outcome(row),
            ]
            lines.append("| " + " | ".join(_markdown_cell(c) for c in cells) + " |")
    else:
        width = max([len("PROJECT"), *(len(row.project) for row in rows)])
        lines.append(f"{'PROJECT':<{width}}  {'HOOK':>6}  {'STATE':<8}  OUTCOME")
        for row in rows:
            detail = "; ".join(row.problems)
            text = outcome(row) + (f" ({detail})" if detail and not row.done else "")
            lines.append(f"{row.project:<{width}}  {row.hook_id or '':>6}  {row.state:<8}  {text}")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    changed = sum(1 for row in rows if row.done)
    lines += ["", f"{len(rows)} projects found: {summary}; {changed} changed"]
    return "\n".join(lines) + "\n"


def exit_code(rows: Sequence[Row], *, change: bool) -> int:
    if any(row.error or row.state == State.ERROR for row in rows):
        return EXIT_ERROR
    if change:
        return EXIT_OK
    return EXIT_TO_FIX if any(row.state != State.OK for row in rows) else EXIT_OK


# -- the command ---------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = commands.add_parser(
        "hooks",
        help="install or check the bot's webhook on a group's projects",
        description="Install, check or repair the bot's project webhook on every project of a "
        "group (subgroups included) or on one project. Needs GITLAB_URL, GITLAB_TOKEN (a "
        "Maintainer of the projects) and WEBHOOK_SECRET.",
    )
    actions = hooks.add_subparsers(dest="hooks_command", required=True)
    install = actions.add_parser("install", help="create or correct the bot's hook")
    status = actions.add_parser("status", help="list missing, wrong and disabled hooks")
    for parser in (install, status):
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--group", help="a group's full path or id (subgroups included)")
        where.add_argument("--project", help="a project's full path or id")
        parser.add_argument(
            "--url", required=True, help="the bot's webhook URL, e.g. https://bot.example/webhook"
        )
        parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
        parser.add_argument(
            "--reset-token",
            action="store_true",
            help="send WEBHOOK_SECRET to every bot hook again (GitLab never shows a hook's "
            "token, so a changed secret cannot be detected)",
        )
    install.add_argument("--dry-run", action="store_true", help="print what would change")
    install.set_defaults(run=lambda args: hooks_command(args, change=not args.dry_run))
    status.add_argument("--fix", action="store_true", help="repair what is missing or wrong")
    status.set_defaults(run=lambda args: hooks_command(args, change=args.fix), dry_run=False)


def hooks_command(args: argparse.Namespace, *, change: bool) -> int:
    import gitlab as python_gitlab
    from pydantic import ValidationError

    from bot.settings import GitLabSettings, settings_error_line

    try:
        settings = GitLabSettings()
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if change and not secret.strip():
        print("compliance-bot: WEBHOOK_SECRET is not set (the hooks' token)", file=sys.stderr)
        return EXIT_USAGE
    if secret != secret.strip():
        print("compliance-bot: WEBHOOK_SECRET has surrounding whitespace", file=sys.stderr)
        return EXIT_USAGE
    verify: bool | str = settings.gitlab_verify_tls
    if settings.gitlab_ca_bundle is not None:
        verify = str(settings.gitlab_ca_bundle)
    gl = python_gitlab.Gitlab(
        str(settings.gitlab_url).rstrip("/"),
        private_token=settings.gitlab_token.get_secret_value(),
        ssl_verify=verify,
        timeout=settings.http_timeout,
        retry_transient_errors=True,
        user_agent="compliance-bot",
    )
    rows = run_hooks(gl, args, secret, change=change)
    sys.stdout.write(
        render(rows, args.format, change=change, dry_run=bool(getattr(args, "dry_run", False)))
    )
    return exit_code(rows, change=change)
