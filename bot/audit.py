"""`compliance-bot audit GROUP`: the repository rules over every project of a group.

One run lists the group's projects (subgroups included), then checks each one concurrently
through the process's one GitLab client: the root tree of its default branch, the `.gitlab/`
tree when the root lists that directory, and `.gitlab/compliance.yml` when that tree shows
one. The listing already carries the description, topics, default branch and `empty_repo`,
so a project costs 1 to 3 calls.

It is fail-safe per project: a project that cannot be read (403, an empty repository, GitLab
unavailable after retries) becomes a row with status `error` and the reason, is never counted
as compliant, and never stops the run (DESIGN.md, invariant 3: an error is never a pass).

    exit 0  every project (and member) is compliant
    exit 1  some are non-compliant, none errored
    exit 2  usage: missing settings, unreadable or invalid --config
    exit 3  some could not be checked, or the group could not be listed

Imports of the engine and the HTTP client stay inside the functions that use them, because
`register` runs for every `compliance-bot` invocation and `--help` must stay fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import sys
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from bot.model import Finding, Severity

if TYPE_CHECKING:
    from bot.config import Config
    from bot.engine import Plan
    from bot.gitlab import GitLab
    from bot.settings import GitLabSettings

EXIT_COMPLIANT = 0
EXIT_NON_COMPLIANT = 1
EXIT_USAGE = 2
EXIT_ERROR = 3

DEFAULT_CONCURRENCY = 16
# Invariant 8, everything is bounded: a listing longer than this is reported, not read on.
MAX_PROJECTS = 100_000
MAX_MEMBERS = 10_000
# httpx's pool cannot usefully be larger; GitLabSettings caps HTTP_POOL_SIZE at 256 too.
MAX_CONNECTIONS = 256
FORMATS = ("table", "json", "csv", "markdown")

# https://docs.gitlab.com/user/profile/#add-details-to-your-profile-with-a-readme
PROFILE_README_DOC = (
    "https://docs.gitlab.com/user/profile/#add-details-to-your-profile-with-a-readme"
)
PROFILE_RULE = "profile.readme"


class Status(StrEnum):
    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    ERROR = "error"


@dataclass(frozen=True)
class Row:
    """The verdict on one project (or, with --members, one member's profile README)."""

    kind: str  # "project" or "member"
    id: int
    name: str  # path_with_namespace, or the member's username
    web_url: str
    status: Status
    findings: tuple[Finding, ...] = ()
    reason: str = ""  # why the row is an error: what could not be read
    details: tuple[str, ...] = ()  # e.g. the config errors, one per line
    config_source: str = ""  # which rules judged it: defaults, the project's file, --config

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def failing(self) -> bool:
        return self.status is not Status.COMPLIANT

    def summary(self) -> str:
        """One line: the reason of an error, else what the findings say."""
        text = (
            self.reason
            if self.status is Status.ERROR
            else "; ".join(f.message for f in self.findings)
        )
        if self.details:
            more = f" (and {len(self.details) - 1} more)" if len(self.details) > 1 else ""
            text = f"{text}: {self.details[0]}{more}"
        return text or "ok"


@dataclass
class AuditResult:
    group: str
    projects: list[Row] = field(default_factory=list)
    members: list[Row] | None = None  # None: --members was not asked for
    listing_error: str | None = None  # the project listing failed (rows may be partial)
    members_error: str | None = None
    seconds: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.listing_error, self.members_error) if e]

    def rows(self) -> list[Row]:
        return [*self.projects, *(self.members or [])]

    def exit_code(self) -> int:
        rows = self.rows()
        if self.errors or any(r.status is Status.ERROR for r in rows):
            return EXIT_ERROR
        if any(r.status is Status.NON_COMPLIANT for r in rows):
            return EXIT_NON_COMPLIANT
        return EXIT_COMPLIANT


class Progress(Protocol):
    """Told how many items were found to check, and of each verdict as it arrives."""

    def found(self, count: int) -> None: ...

    def done(self, row: Row) -> None: ...


@dataclass(frozen=True)
class AuditOptions:
    group: str  # a full path (acme/platform) or a numeric id
    policy: Config | None = None  # one config for every project (--config); None: their own
    include_archived: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    members: bool = False


# -- checking ------------------------------------------------------------------------------


def repository_plan(config: Config, branch: str) -> Plan:
    """The enabled `repository.*` rules, as a push to the default branch would run them."""
    from bot.engine import Plan, plan
    from bot.rules.base import Scope

    full = plan(config, Scope.PUSH, branch)
    rules = tuple(
        (rule, options) for rule, options in full.rules if rule.id.startswith("repository.")
    )
    return Plan(config=full.config, rules=rules)


def _project_row(project: Mapping[str, Any], status: Status, **values: Any) -> Row:
    return Row(
        kind="project",
        id=int(project.get("id") or 0),
        name=str(project.get("path_with_namespace") or project.get("id")),
        web_url=str(project.get("web_url") or ""),
        status=status,
        **values,
    )


async def audit_project(
    gitlab: GitLab, project: Mapping[str, Any], policy: Config | None = None
) -> Row:
    """Judge one project from its listing entry; every failure becomes an `error` row."""
    try:
        return await _audit_project(gitlab, project, policy)
    except Exception as exc:  # fail-safe: one project's surprise never ends the run
        return _project_row(project, Status.ERROR, reason=f"internal error: {exc!r}")


async def _audit_project(gitlab: GitLab, project: Mapping[str, Any], policy: Config | None) -> Row:
    from bot.config import ConfigError
    from bot.engine import config_from, evaluate
    from bot.gitlab import GitLabError, NotFound
    from bot.rules.base import Context, Need, Scope
    from bot.source import GitLabSource, project_facts_from_api

    branch = project.get("default_branch")
    # `empty_repo` and `default_branch` come with the listing (Entities::Project); a project
    # without commits has no default branch and no tree to judge.
    # https://docs.gitlab.com/api/projects/#get-a-single-project
    if project.get("empty_repo") or not branch:
        return _project_row(project, Status.ERROR, reason="empty repository")
    branch = str(branch)
    # The listing holds the project's facts. Calls are what an audit is bound by: `.gitlab/`
    # is listed only when the root tree shows it.
    source = GitLabSource(
        gitlab,
        int(project["id"]),
        gitlab_dir_when_listed=True,
        known_project=project_facts_from_api(project),
    )
    try:
        config = (
            policy if policy is not None else config_from(await source.config_file(branch), None)
        )
        checks = repository_plan(config, branch)
        needs = checks.needs
        paths = await source.tree_paths(branch) if Need.TREE in needs else frozenset[str]()
        codeowners = await source.codeowners(branch) if Need.CODEOWNERS in needs else None
    except ConfigError as exc:
        # The project's own config is broken: as for a push, that is a failure of the project
        # (the bot sets `failed`), not of the audit.
        finding = Finding(
            rule="config",
            severity=Severity.ERROR,
            message=f"invalid {exc.source}",
            fix="Fix the config; `compliance-bot config validate FILE` lists each error.",
        )
        return _project_row(
            project,
            Status.NON_COMPLIANT,
            findings=(finding,),
            details=tuple(str(p) for p in exc.problems),
            config_source=exc.source,
        )
    except NotFound as exc:
        if exc.path.endswith("/repository/tree"):
            # Since GitLab 17.7 the tree of a missing ref is a 404: no commits on the branch.
            # https://docs.gitlab.com/api/repositories/#list-repository-tree
            reason = f"empty repository (GitLab has no tree for {branch}: {exc})"
            return _project_row(project, Status.ERROR, reason=reason)
        return _project_row(project, Status.ERROR, reason=str(exc))
    except GitLabError as exc:
        return _project_row(project, Status.ERROR, reason=str(exc))
    context = Context(
        scope=Scope.PUSH,
        branch=branch,
        target_branch=branch,
        paths=paths,
        project=await source.project(),
        codeowners=codeowners,
    )
    findings = tuple(f for outcome in evaluate(checks, context) for f in outcome.findings)
    failed = any(f.severity is Severity.ERROR for f in findings)
    return _project_row(
        project,
        Status.NON_COMPLIANT if failed else Status.COMPLIANT,
        findings=findings,
        config_source=config.source,
    )


def _member_row(member: Mapping[str, Any], status: Status, message: str = "", **values: Any) -> Row:
    findings: tuple[Finding, ...] = ()
    if status is Status.NON_COMPLIANT:
        findings = (
            Finding(
                rule=PROFILE_RULE,
                severity=Severity.ERROR,
                message=message,
                fix=f"Create a public project named exactly like the username, with a README "
                f"at its root: {PROFILE_README_DOC}",
            ),
        )
    return Row(
        kind="member",
        id=int(member.get("id") or 0),
        name=str(member.get("username") or member.get("id")),
        web_url=str(member.get("web_url") or ""),
        status=status,
        findings=findings,
        **values,
    )


def _is_readme(path: str) -> bool:
    name = path.lower()
    return name == "readme" or name.startswith("readme.")


async def audit_member(gitlab: GitLab, member: Mapping[str, Any]) -> Row:
    """Whether a member has a profile README: a public project `<username>/<username>` with a
    README at its root, which GitLab shows on the profile page."""
    try:
        return await _audit_member(gitlab, member)
    except Exception as exc:  # fail-safe, as for projects
        return _member_row(member, Status.ERROR, reason=f"internal error: {exc!r}")


async def _audit_member(gitlab: GitLab, member: Mapping[str, Any]) -> Row:
    from bot.gitlab import GitLabError, NotFound, encode_path

    username = str(member["username"])
    path = f"{username}/{username}"
    missing = Status.NON_COMPLIANT
    try:
        # https://docs.gitlab.com/api/projects/#get-a-single-project (`:id` may be the path)
        project: dict[str, Any] = await gitlab.get(f"/projects/{encode_path(path)}")
    except NotFound:
        # GitLab answers 404 alike for a missing project and one the token may not see; either
        # way no public profile project exists.
        return _member_row(member, missing, f"no public project {path}")
    except GitLabError as exc:
        return _member_row(member, Status.ERROR, reason=str(exc))
    # The project slug must be the username, capitals included (routes match either case).
    if project.get("path") != username:
        actual = project.get("path_with_namespace")
        return _member_row(member, missing, f"the profile project is {actual}, not {path} exactly")
    visibility = project.get("visibility")
    if visibility != "public":
        shown = f"{path} is {visibility or 'not public'}; a profile shows a public project's README"
        return _member_row(member, missing, shown)
    branch = project.get("default_branch")
    if project.get("empty_repo") or not branch:
        return _member_row(member, missing, f"{path} has no README (empty repository)")
    if project.get("readme_url"):
        return _member_row(member, Status.COMPLIANT)
    # `readme_url` is absent when the token cannot read the repository, and a fake may leave
    # it null: the root tree is the ground truth.
    try:
        tree = await gitlab.tree(int(project["id"]), str(branch))
    except GitLabError as exc:
        return _member_row(member, Status.ERROR, reason=str(exc))
    if any(item.get("type") == "blob" and _is_readme(str(item.get("path"))) for item in tree):
        return _member_row(member, Status.COMPLIANT)
    return _member_row(member, missing, f"{path} has no README at its root")


def _group_path(group: str) -> str:
    from bot.gitlab import encode_path

    return f"/groups/{encode_path(group)}"


async def _audit_projects(
    gitlab: GitLab, options: AuditOptions, slots: asyncio.Semaphore, progress: Progress | None
) -> tuple[list[Row], str | None]:
    from bot.gitlab import GitLabError

    # https://docs.gitlab.com/api/groups/#list-projects
    # - include_subgroups: the whole tree of the group; with_shared=false: only projects that
    #   live in it (shared ones belong to, and are audited with, their own group).
    # - archived=false filters on the server, so archived projects cost nothing.
    # - Offset pagination, ordered by id ascending, following Link rel="next": keyset is not
    #   offered on this endpoint (https://docs.gitlab.com/api/rest/#supported-resources; its
    #   handler in lib/api/groups.rb calls the offset-only `paginate`). The id order keeps
    #   pages stable while projects are created, and the max-offset limit applies only to
    #   endpoints that offer keyset, so large groups page through to the end.
    params = {
        "include_subgroups": "true",
        "with_shared": "false",
        "order_by": "id",
        "sort": "asc",
    }
    if not options.include_archived:
        params["archived"] = "false"
    rows: list[Row] = []
    seen: set[int] = set()
    listing_error: str | None = None

    async def check(project: Mapping[str, Any]) -> None:
        try:
            row = await audit_project(gitlab, project, options.policy)
        finally:
            slots.release()
        rows.append(row)
        if progress is not None:
            progress.done(row)

    listing = gitlab.pages(f"{_group_path(options.group)}/projects", params)
    async with asyncio.TaskGroup() as tasks, contextlib.aclosing(listing):
        try:
            async for page in listing:
                fresh = [
                    p
                    for p in page
                    if isinstance(p, dict)
                    and isinstance(p.get("id"), int)
                    and p["id"] not in seen
                    # Defence in depth: skip archived ones even if the filter was ignored.
                    and (options.include_archived or not p.get("archived"))
                ]
                seen.update(int(p["id"]) for p in fresh)
                if len(seen) > MAX_PROJECTS:
                    listing_error = f"the group lists more than {MAX_PROJECTS} projects"
                    break
                if progress is not None:
                    progress.found(len(fresh))
                for project in fresh:
                    # Checking starts while the listing goes on; the semaphore bounds both
                    # the projects in flight and the memory they hold.
                    await slots.acquire()
                    tasks.create_task(check(project))
        except (GitLabError, ValueError) as exc:  # ValueError: a body that is not JSON
            listing_error = f"could not list the projects of {options.group}: {exc}"
    return rows, listing_error


async def _audit_members(
    gitlab: GitLab, options: AuditOptions, slots: asyncio.Semaphore, progress: Progress | None
) -> tuple[list[Row], str | None]:
    from bot.gitlab import GitLabError

    try:
        # Direct, inherited and invited members, each once.
        # https://docs.gitlab.com/api/members/#list-all-members-of-a-group-or-project-including-inherited-and-invited-members
        listed = await gitlab.get_all(
            f"{_group_path(options.group)}/members/all", max_items=MAX_MEMBERS
        )
    except (GitLabError, ValueError) as exc:  # ValueError: a body that is not JSON
        return [], f"could not list the members of {options.group}: {exc}"
    members: dict[int, Mapping[str, Any]] = {}
    for member in listed:
        # A blocked or deactivated user has no profile to show; awaiting invites neither.
        if isinstance(member, dict) and member.get("state") == "active" and member.get("username"):
            members.setdefault(int(member["id"]), member)
    if progress is not None:
        progress.found(len(members))
    rows: list[Row] = []

    async def check(member: Mapping[str, Any]) -> None:
        try:
            row = await audit_member(gitlab, member)
        finally:
            slots.release()
        rows.append(row)
        if progress is not None:
            progress.done(row)

    async with asyncio.TaskGroup() as tasks:
        for member in members.values():
            await slots.acquire()
            tasks.create_task(check(member))
    return rows, None


def _by_name(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r.name.lower(), r.id))


async def audit(
    gitlab: GitLab, options: AuditOptions, progress: Progress | None = None
) -> AuditResult:
    """Audit the group's projects (and, if asked, members) through one client."""
    started = time.monotonic()
    slots = asyncio.Semaphore(options.concurrency)
    result = AuditResult(group=options.group)
    projects = _audit_projects(gitlab, options, slots, progress)
    if options.members:
        (rows, result.listing_error), (members, result.members_error) = await asyncio.gather(
            projects, _audit_members(gitlab, options, slots, progress)
        )
        result.members = _by_name(members)
    else:
        rows, result.listing_error = await projects
    result.projects = _by_name(rows)
    result.seconds = time.monotonic() - started
    return result


def client_settings(settings: GitLabSettings, concurrency: int) -> GitLabSettings:
    """The settings of the audit's one client: a project in flight makes one call at a time,
    so unless GITLAB_CONCURRENCY or HTTP_POOL_SIZE were set, requests in flight and
    connections follow `--concurrency`, plus one for the listing that runs alongside."""
    wanted = min(MAX_CONNECTIONS, concurrency + 1)
    update = {
        name: wanted
        for name in ("gitlab_concurrency", "http_pool_size")
        if name not in settings.model_fields_set
    }
    return settings.model_copy(update=update)


async def run_audit(
    settings: GitLabSettings, options: AuditOptions, progress: Progress | None = None
) -> AuditResult:
    """Open the process's one GitLab client and audit."""
    from bot.gitlab import open_gitlab

    async with open_gitlab(client_settings(settings, options.concurrency)) as gitlab:
        return await audit(gitlab, options, progress)


# -- output --------------------------------------------------------------------------------


def _counts(rows: Sequence[Row]) -> dict[str, int]:
    return {
        "total": len(rows),
        "compliant": sum(1 for r in rows if r.status is Status.COMPLIANT),
        "non_compliant": sum(1 for r in rows if r.status is Status.NON_COMPLIANT),
        "error": sum(1 for r in rows if r.status is Status.ERROR),
    }


def summary_lines(result: AuditResult) -> list[str]:
    lines = []
    sections = [("Projects", result.projects)]
    if result.members is not None:
        sections.append(("Members", result.members))
    for title, rows in sections:
        c = _counts(rows)
        errors = f"{c['error']} error" + ("" if c["error"] == 1 else "s")
        lines.append(
            f"{title}: {c['total']} checked: {c['compliant']} compliant, "
            f"{c['non_compliant']} non-compliant, {errors}"
        )
    lines += [f"error: {e}" for e in result.errors]
    return lines


def _shown(rows: Sequence[Row] | None, only_failing: bool) -> list[Row]:
    return [r for r in rows or () if r.failing or not only_failing]


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "web_url": row.web_url,
        "status": str(row.status),
        "errors": row.errors,
        "warnings": row.warnings,
        "reason": row.reason or None,
        "details": list(row.details),
        "config": row.config_source or None,
        "findings": [
            {"rule": f.rule, "severity": str(f.severity), "message": f.message, "fix": f.fix}
            for f in row.findings
        ],
    }


def render_json(result: AuditResult, *, only_failing: bool = False) -> str:
    document = {
        "group": result.group,
        "exit_code": result.exit_code(),
        "summary": {
            "projects": _counts(result.projects),
            "members": None if result.members is None else _counts(result.members),
        },
        "errors": result.errors,
        "projects": [_row_json(r) for r in _shown(result.projects, only_failing)],
        "members": None
        if result.members is None
        else [_row_json(r) for r in _shown(result.members, only_failing)],
    }
    return json.dumps(document, indent=2)


def render_csv(result: AuditResult, *, only_failing: bool = False) -> str:
    """One row per project and member; the summary goes to stderr, keeping this parseable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "name", "status", "errors", "warnings", "details", "web_url"])
    for row in _shown(result.rows(), only_failing):
        writer.writerow(
            [row.kind, row.name, row.status, row.errors, row.warnings, row.summary(), row.web_url]
        )
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(result: AuditResult, *, only_failing: bool = False) -> str:
    lines = [f"# Compliance audit of `{_md(result.group)}`", ""]
    sections = [("Project", result.projects)]
    if result.members is not None:
        sections.append(("Member", result.members))
    for title, rows in sections:
        shown = _shown(rows, only_failing)
        lines += [
            f"| {title} | Status | Errors | Warnings | Details |",
            "| --- | --- | --: | --: | --- |",
        ]
        for row in shown:
            name = f"[{_md(row.name)}]({row.web_url})" if row.web_url else _md(row.name)
            lines.append(
                f"| {name} | {row.status} | {row.errors} | {row.warnings} | {_md(row.summary())} |"
            )
        if not shown:
            lines.append("| (none) | | | | |")
        lines.append("")
    lines += [f"- {_md(line)}" for line in summary_lines(result)]
    return "\n".join(lines) + "\n"


def render_text(result: AuditResult, *, only_failing: bool = False) -> str:
    """A plain aligned table: what `table` prints when stdout is not a terminal."""
    lines: list[str] = []
    sections = [("PROJECT", result.projects)]
    if result.members is not None:
        sections.append(("MEMBER", result.members))
    for title, rows in sections:
        shown = _shown(rows, only_failing)
        width = max([len(title), *(len(r.name) for r in shown)])
        lines.append(f"{title:<{width}}  {'STATUS':<13}  {'ERRORS':>6}  {'WARNINGS':>8}  DETAILS")
        lines += [
            f"{r.name:<{width}}  {r.status:<13}  {r.errors:>6}  {r.warnings:>8}  {r.summary()}"
            for r in shown
        ]
        lines.append("")
    lines += summary_lines(result)
    return "\n".join(lines) + "\n"


_STATUS_STYLE = {
    Status.COMPLIANT: "green",
    Status.NON_COMPLIANT: "red",
    Status.ERROR: "bold yellow",
}


def print_rich(result: AuditResult, stream: TextIO, *, only_failing: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream)
    sections = [("Project", result.projects)]
    if result.members is not None:
        sections.append(("Member", result.members))
    for title, rows in sections:
        table = Table(title=f"{title}s of {result.group}", title_justify="left")
        table.add_column(title, no_wrap=True)
        table.add_column("Status", no_wrap=True)
        table.add_column("Errors", justify="right")
        table.add_column("Warnings", justify="right")
        table.add_column("Details", overflow="fold")
        for row in _shown(rows, only_failing):
            table.add_row(
                Text(row.name, style=f"link {row.web_url}" if row.web_url else ""),
                Text(str(row.status), style=_STATUS_STYLE[row.status]),
                str(row.errors),
                str(row.warnings),
                Text(row.summary()),
            )
        console.print(table)
    for line in summary_lines(result):
        console.print(Text(line, style="bold red" if line.startswith("error:") else "bold"))


def write_report(
    result: AuditResult, fmt: str, out: TextIO, err: TextIO, *, only_failing: bool = False
) -> None:
    if fmt == "json":
        out.write(render_json(result, only_failing=only_failing) + "\n")
    elif fmt == "csv":
        out.write(render_csv(result, only_failing=only_failing))
        # The counts go to stderr, so that stdout stays one CSV table.
        err.write("\n".join(summary_lines(result)) + "\n")
        return
    elif fmt == "markdown":
        out.write(render_markdown(result, only_failing=only_failing))
    elif out.isatty() and _has_rich():
        print_rich(result, out, only_failing=only_failing)
    else:
        out.write(render_text(result, only_failing=only_failing))
    # What stopped a listing is in the report, and on stderr too, for whoever sent the
    # report to a file.
    for error in result.errors:
        err.write(f"compliance-bot: {error}\n")


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


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
    if not (stream.isatty() and _has_rich()):
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
        "and GITLAB_TOKEN. Exit code 0: all compliant; 1: some non-compliant; 3: some could "
        "not be checked.",
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
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    parser.add_argument(
        "--only-failing",
        action="store_true",
        help="list only non-compliant and errored rows (the summary still counts all)",
    )
    parser.add_argument(
        "--members",
        action="store_true",
        help="also check that each member has a profile README (a public project named "
        "like the username, with a README)",
    )
    parser.set_defaults(run=audit_command)


def _load_policy(path: Path) -> Config | int:
    from bot.config import ConfigError, load

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"compliance-bot: --config {path}: cannot read: {reason}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return load(text, str(path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"compliance-bot: {problem}", file=sys.stderr)
        return EXIT_USAGE


def audit_command(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    from pydantic import ValidationError

    from bot.settings import GitLabSettings, settings_error_line

    try:
        settings = GitLabSettings()  # GITLAB_URL and GITLAB_TOKEN come from the environment
    except ValidationError as exc:
        print(f"compliance-bot: {settings_error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    policy = None
    if args.config is not None:
        loaded = _load_policy(args.config)
        if isinstance(loaded, int):
            return loaded
        policy = loaded
    options = AuditOptions(
        group=args.group,
        policy=policy,
        include_archived=args.include_archived,
        concurrency=args.concurrency,
        members=args.members,
    )
    # The CLI runs it on the process's one event loop; ^C ends it with "audit interrupted"
    # and exit code 130 (bot/cli.py).
    return _audit_and_report(settings, options, args)


async def _audit_and_report(
    settings: GitLabSettings, options: AuditOptions, args: argparse.Namespace
) -> int:
    with _progress(sys.stderr) as progress:
        result = await run_audit(settings, options, progress)
    write_report(result, args.format, sys.stdout, sys.stderr, only_failing=args.only_failing)
    return result.exit_code()
