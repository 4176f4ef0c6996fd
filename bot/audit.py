"""`compliance-bot audit GROUP`: the repository rules over every project of a group.

One run lists the group's projects (subgroups included), then checks each one concurrently
through the process's one GitLab client: the root tree of its default branch, the `.gitlab/`
tree when the root lists that directory, and `.gitlab/compliance.yml` when that tree shows
one. The listing already carries the description, topics, default branch and `empty_repo`,
so a project costs 1 to 3 calls.

Each project gets one of four outcomes: `compliant` (no finding), `warnings` (findings, none of
severity error), `non-compliant` (an error finding, or an invalid config) and `error` (it
could not be judged, with the reason).

It is fail-safe per project: a project that cannot be read (403, an empty repository, GitLab
unavailable after retries) becomes a row with status `error` and the reason, is never counted
as compliant, and never stops the run (DESIGN.md, invariant 3: an error is never a pass).

The command, its progress display and its reports are `bot/audit_command.py`'s. Imports of the
engine and the HTTP client stay inside the functions that use them, because the command's
`register` imports this module for every `compliance-bot` invocation and `--help` must stay
fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.audit_model import (
    PROFILE_README_DOC,
    PROFILE_RULE,
    AuditResult,
    Row,
    Status,
    outcome_of,
)
from bot.model import Finding, Severity

if TYPE_CHECKING:
    from pathlib import Path

    from bot.config import Config
    from bot.engine import Plan
    from bot.gitlab import GitLab
    from bot.settings import GitLabSettings

DEFAULT_CONCURRENCY = 64
# Invariant 8, everything is bounded: a listing longer than this is reported, not read on.
MAX_PROJECTS = 100_000
MAX_MEMBERS = 10_000
# httpx's pool cannot usefully be larger; GitLabSettings caps HTTP_POOL_SIZE at 256 too.
MAX_CONNECTIONS = 256


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


class UnreadablePolicy(Exception):
    """The `--config` file cannot be read; the message is why."""


def load_policy(path: Path) -> Config:
    """The one config every project is judged by, read before the audit starts: an
    unreadable file raises UnreadablePolicy, an invalid one ConfigError."""
    from bot.config import load, read_config_file

    try:
        text = read_config_file(path)
    except OSError as exc:
        raise UnreadablePolicy(exc.strerror) from None
    return load(text, str(path))


# -- checking ------------------------------------------------------------------------------


def repository_plan(config: Config, branch: str) -> Plan:
    """The enabled `repository.*` rules, as a push to the default branch would run them."""
    from bot.engine import REPOSITORY_FAMILY, plan
    from bot.rules.base import Scope

    return plan(config, Scope.PUSH, branch).only(lambda rule: rule.id.startswith(REPOSITORY_FAMILY))


def _listed_row(
    kind: str, listed: Mapping[str, Any], name_key: str, status: Status, **values: Any
) -> Row:
    """The row of a project or member as GitLab listed it: its id, its name (the id where
    GitLab gave none) and its page."""
    return Row(
        kind=kind,
        id=int(listed.get("id") or 0),
        name=str(listed.get(name_key) or listed.get("id")),
        web_url=str(listed.get("web_url") or ""),
        status=status,
        **values,
    )


def _project_row(project: Mapping[str, Any], status: Status, **values: Any) -> Row:
    return _listed_row("project", project, "path_with_namespace", status, **values)


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
    from bot.engine import evaluate
    from bot.gitlab import GitLabError, NotFound
    from bot.policy import resolve_for_listed_project as resolve_policy
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
            policy
            if policy is not None
            else await resolve_policy(gitlab, project, branch, await source.config_file(branch))
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
            message=str(exc),  # "invalid FILE", or "could not read policy `…`: …"
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
    return _project_row(
        project,
        outcome_of(findings),
        findings=findings,
        config_source=config.source,
        details=config.notes,  # the policies that applied, and weakenings ignored
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
    return _listed_row("member", member, "username", status, findings=findings, **values)


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
