"""A check of a git checkout, on a laptop or in a GitLab CI job: which range, read through git,
with GitLab when a token is given.

`compliance-bot check` (bot/check_command.py, the face) reads its arguments and environment
into a call here and prints what comes back. Locally the range is the branch against the
default branch; in CI it comes from GitLab's predefined variables:
https://docs.gitlab.com/ci/variables/predefined_variables/#predefined-variables-for-merge-request-pipelines
With COMPLIANCE_TOKEN, GitLab's API tells what CI's variables do not (the whole MR, the
project's facts, verified signatures, the group policy, the waivers in the bot's MR note),
through one client for the whole run, and the MR note is posted when asked.

This module imports no face (tests/test_architecture.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.model import Finding, Report
from bot.report import Links, render_note
from bot.rules.base import MergeRequestFacts, Need, Scope

if TYPE_CHECKING:
    # bot.local reads the config (pydantic models of every rule) and bot.engine the GitLab
    # client: imported where a check runs, so that `compliance-bot --help` stays fast.
    from bot.engine import Plan
    from bot.gitlab import GitLab
    from bot.local import Git, GitSource, LocalResult, Revisions
    from bot.settings import GitLabSettings


# A project or group access token (api scope). CI_JOB_TOKEN cannot post notes, set statuses
# or read an MR's diffs, so it is never used:
# https://docs.gitlab.com/ci/jobs/ci_job_token/#job-token-access
TOKEN_VARIABLE = "COMPLIANCE_TOKEN"  # noqa: S105 (the variable's name, not a token)

# GitLab cuts CI_MERGE_REQUEST_DESCRIPTION at 2,700 characters (16.7+) and says so in
# CI_MERGE_REQUEST_DESCRIPTION_IS_TRUNCATED (16.8+); these rules read the description.
DESCRIPTION_RULES = (
    "merge_request.description",
    "merge_request.checklist",
    "merge_request.linked_issue",
)


class UsageError(Exception):
    pass


# -- what to check -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The range, and what the environment says that git does not."""

    revisions: Revisions
    merge_request: MergeRequestFacts | None = None
    unjudgeable: Mapping[str, str] = field(default_factory=dict)
    partial: Mapping[str, str] = field(default_factory=dict)
    in_ci: bool = False
    mr_iid: int | None = None
    mr_project_id: int | None = None  # the target project: the MR, its note, the project facts
    source_project_id: int | None = None  # where the commits are (signatures)
    # The MR's page as GitLab builds it (`<project>/-/merge_requests/<iid>`), for the note's
    # links to commits and files; empty outside an MR pipeline.
    merge_request_url: str = ""


def local_target(git: Git, base: str | None, head: str | None) -> Target:
    """A check before pushing, judged as the merge request it will become."""
    from bot.local import Revisions, branch_name, current_branch, default_branch, merge_base

    head_sha = git.commit_sha(head or "HEAD", "--head")
    branch = current_branch(git) if head is None else (branch_name(git, head) or "")
    default = default_branch(git)
    if base:
        base_sha = git.commit_sha(base, "--base")
        target_branch = branch_name(git, base) or (default[1] if default else "")
    else:
        if default is None:
            raise UsageError(
                "cannot tell the default branch (no origin/HEAD, main or master): pass --base"
            )
        base_sha = merge_base(git, default[0], head_sha)
        target_branch = default[1]
    return Target(Revisions.merge_request(base_sha, head_sha, branch, target_branch))


def _missing_branch(name: str, fetch_problem: str) -> str:
    if not name:
        return "CI_DEFAULT_BRANCH is not set and no default branch is in this clone: pass --base"
    if fetch_problem:
        return (
            f"{name} is not in this clone and `git fetch origin {name}` failed "
            f"({fetch_problem}): give the job read access to the repository, or fetch it "
            f"before the check (before_script: git fetch origin "
            f"+refs/heads/{name}:refs/remotes/origin/{name}), or pass --base"
        )
    return f"{name} is not in this clone: fetch it, or pass --base"


def _parent(git: Git, sha: str) -> str:
    parent = git.rev(f"{sha}^")
    if parent is None:
        raise UsageError(
            f"{sha[:12]} has no parent in this clone, so there is no commit range to judge: "
            "set GIT_DEPTH: 0 on the job, or pass --base"
        )
    return parent


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() else None


def _merge_request_url(project_url: str | None, iid: int) -> str:
    """The MR page GitLab links to (config/routes/merge_requests.rb, under the project's `/-/`
    scope); empty when the variable is missing or not an http(s) URL."""
    url = (project_url or "").strip().rstrip("/")
    if not url.startswith(("https://", "http://")):
        return ""
    return f"{url}/-/merge_requests/{iid}"


def ci_target(git: Git, env: Mapping[str, str], base: str | None, head: str | None) -> Target:
    """The range of a GitLab CI job, from the predefined variables.

    An MR pipeline judges CI_MERGE_REQUEST_DIFF_BASE_SHA..head, head being the MR's head:
    CI_COMMIT_SHA, except in merged-results and merge-train pipelines, where CI_COMMIT_SHA is
    the merge GitLab made and CI_MERGE_REQUEST_SOURCE_BRANCH_SHA the MR's head. A branch
    pipeline judges CI_COMMIT_BEFORE_SHA..CI_COMMIT_SHA, or the default branch..head when
    the before sha is all zeros (a new branch; GitLab also sends zeros for the first
    pipeline of a branch and for manual runs). Its rules come from the default branch, as
    on the server; on the default branch itself, from the commit before the push.
    """
    from bot.local import ZERO_SHA, Revisions, default_branch, fetch_branch
    from bot.webhook import ci_flag, merge_request_facts_from_ci

    iid = _int(env, "CI_MERGE_REQUEST_IID")
    project_id = _int(env, "CI_PROJECT_ID")
    if iid is not None:
        head_rev = head or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or env.get("CI_COMMIT_SHA")
        head_sha = git.commit_sha(head_rev or "HEAD", "the head")
        base_rev = base or env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA")
        if not base_rev:
            raise UsageError("CI_MERGE_REQUEST_DIFF_BASE_SHA is not set: pass --base")
        source = env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "")
        target = env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "")
        if git.rev(base_rev) is None and target and not base:
            # A shallow MR pipeline may lack the diff base, where the rules come from; it is
            # on the target branch.
            fetch_branch(git, target)
            if git.rev(base_rev) is None:
                raise UsageError(
                    f"the MR's diff base {base_rev[:12]} (on {target}, where the rules come "
                    "from) is not in this clone, even after fetching "
                    f"{target}: set GIT_DEPTH: 0 on the job, or pass --base"
                )
        base_sha = git.commit_sha(base_rev, "the MR's diff base")
        partial = {}
        if ci_flag(env, "CI_MERGE_REQUEST_DESCRIPTION_IS_TRUNCATED"):
            partial = dict.fromkeys(
                DESCRIPTION_RULES,
                "GitLab gives CI only the first 2,700 characters of the description; set "
                f"{TOKEN_VARIABLE} to judge all of it",
            )
        return Target(
            Revisions.merge_request(base_sha, head_sha, source, target),
            merge_request=merge_request_facts_from_ci(env),
            unjudgeable={
                "merge_request.reviewer": "GitLab CI does not tell an MR's reviewers; set "
                f"{TOKEN_VARIABLE} to read them"
            },
            partial=partial,
            in_ci=True,
            mr_iid=iid,
            mr_project_id=_int(env, "CI_MERGE_REQUEST_PROJECT_ID") or project_id,
            source_project_id=_int(env, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID") or project_id,
            # https://docs.gitlab.com/ci/variables/predefined_variables/ (merge request
            # pipelines): CI_MERGE_REQUEST_PROJECT_URL is the MR's (target) project's URL.
            merge_request_url=_merge_request_url(env.get("CI_MERGE_REQUEST_PROJECT_URL"), iid),
        )
    head_sha = git.commit_sha(head or env.get("CI_COMMIT_SHA") or "HEAD", "the head")
    branch = env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME", "")
    default_name = env.get("CI_DEFAULT_BRANCH", "")
    default = default_branch(git, default_name or None)
    fetch_problem = ""
    if default is None and default_name and not base:
        # A branch pipeline's clone holds the built branch only: fetch the one the rules
        # (and a new branch's base) come from.
        fetch_problem = fetch_branch(git, default_name) or ""
        default = default_branch(git, default_name)
    before = env.get("CI_COMMIT_BEFORE_SHA", "")
    on_default = not branch or branch == (default_name or (default[1] if default else ""))
    if base:
        base_sha = git.commit_sha(base, "--base")
    elif before and before != ZERO_SHA:
        base_sha = git.commit_sha(before, "CI_COMMIT_BEFORE_SHA")
    elif on_default:
        # A default-branch pipeline with no push behind it (web, schedule, API, or the first
        # pipeline of the branch) has an all-zeros before sha: judge the last commit, rather
        # than an empty range whose commit rules would pass having judged nothing.
        base_sha = _parent(git, head_sha)
    elif default is not None:
        base_sha = git.commit_sha(default[0], "the default branch")
    else:
        raise UsageError(
            f"a new branch is compared with the default branch, but "
            f"{_missing_branch(default_name, fetch_problem)}"
        )
    if on_default:
        config_rev = base_sha
    elif default is not None:
        config_rev = git.commit_sha(default[0], "the default branch")
    else:
        raise UsageError(
            "the rules come from the default branch, but "
            f"{_missing_branch(default_name, fetch_problem)}"
        )
    return Target(
        Revisions.push(base_sha, head_sha, config_rev, branch),
        in_ci=True,
        source_project_id=project_id,
        mr_project_id=project_id,
    )


# -- reading, judging, and GitLab when a token is given ------------------------------------


def plan_for(
    git: Git,
    revisions: Revisions,
    config_path: str | None,
    policies: Sequence[tuple[str, str]],
    *,
    from_gitlab: bool,
) -> Plan | LocalResult | Unresolved:
    """What to judge by: the engine's plan from the config at the trusted revision, with the
    group policy files given (`--policy`); an invalid config's failure as the result. With
    a token (`from_gitlab`), the group policy and `extends` are read from GitLab once its
    session is open (`judge_and_post`); here only the file at the trusted revision. Raises
    GitError when git cannot read it."""
    from bot.config import ConfigError
    from bot.engine import config_failure, plan
    from bot.local import LocalResult, config_file, read_config

    try:
        if from_gitlab:
            return Unresolved(config_file(git, revisions.config_rev, config_path))
        config = read_config(git, revisions.config_rev, config_path, policies=policies)
        return plan(config, revisions.scope, revisions.target_branch)
    except ConfigError as exc:
        return LocalResult(config_failure(revisions.head, exc), (), revisions)


@dataclass(frozen=True)
class Checked:
    """The result, what the job's log should say about how it was reached (in order), and
    why the MR note could not be posted (None: posted, or not asked for)."""

    result: LocalResult
    notices: tuple[str, ...] = ()
    note_problem: str | None = None


async def judge_and_post(
    settings: GitLabSettings | None,
    git: Git,
    target: Target,
    work: Plan | LocalResult | Unresolved,
    post_note: bool,
) -> Checked:
    """Read and judge; with a token, through one client for the whole run (DESIGN.md,
    invariant 1), and post the note when asked."""
    from bot.gitlab import GitLabError, open_gitlab
    from bot.local import GitSource, LocalResult
    from bot.publish import upsert_note

    notices: list[str] = []
    if settings is None:
        if target.in_ci and target.mr_iid is not None:
            notices.append(f"no {TOKEN_VARIABLE}: the MR's waivers are not read; nothing is waived")
        if isinstance(work, LocalResult):
            return Checked(work, tuple(notices))
        if isinstance(work, Unresolved):
            raise TypeError("a config with group policy needs a GitLab session")
        return Checked(await _judge(GitSource(git), None, target, work), tuple(notices))
    async with open_gitlab(settings) as gitlab:
        if isinstance(work, LocalResult):
            result = work
        else:
            try:
                if isinstance(work, Unresolved):
                    work = await _resolve(gitlab, target, work)
                if isinstance(work, LocalResult):
                    result = work
                else:
                    result = await _judge(_with_gitlab(git, gitlab, target), gitlab, target, work)
            except GitLabError as exc:
                result = LocalResult(
                    report=Report(head_sha=target.revisions.head, error=str(exc)),
                    not_judged=(),
                    revisions=target.revisions,
                )
            result = await _with_note_waivers(gitlab, target, result, notices)
        if not post_note or target.mr_iid is None or target.mr_project_id is None:
            return Checked(result, tuple(notices))
        try:
            links = Links.for_merge_request(target.merge_request_url)
            note = render_note(result.report, links)
            await upsert_note(gitlab, target.mr_project_id, target.mr_iid, note)
        except GitLabError as exc:
            return Checked(result, tuple(notices), f"could not post the MR note: {exc}")
        return Checked(result, tuple(notices))


@dataclass(frozen=True)
class Unresolved:
    """The project's config file (path, text) at the trusted revision, or None, to be
    resolved with its group policies and `extends` once GitLab's session is open."""

    config_file: tuple[str, str] | None


async def _resolve(gitlab: GitLab, target: Target, work: Unresolved) -> Plan | LocalResult:
    """The config as the server resolves it (bot/policy.py): the policies of the MR's target
    project's groups, keyed by the config revision, then the file and every `extends`. A
    policy that cannot be read or is invalid fails the check, never a weaker config."""
    from bot.config import ConfigError
    from bot.engine import config_failure, plan
    from bot.local import LocalResult
    from bot.policy import resolve_for_project

    revisions = target.revisions
    if target.mr_project_id is None:
        raise TypeError("checked by the caller: a token comes with CI_PROJECT_ID")
    try:
        resolution = await resolve_for_project(
            gitlab, target.mr_project_id, revisions.config_rev, work.config_file, None
        )
    except ConfigError as exc:
        return LocalResult(config_failure(revisions.head, exc), (), revisions)
    return plan(resolution.config, revisions.scope, revisions.target_branch)


async def _with_note_waivers(
    gitlab: GitLab, target: Target, result: LocalResult, notices: list[str]
) -> LocalResult:
    """The result with the waivers the server recorded in its MR note applied (CI has no
    journal); what was waived, or why nothing was, goes to `notices` for the job's log.
    Only the bot's own note is trusted, the one by the token's user: GitLab lets only a
    note's author edit it (https://docs.gitlab.com/api/notes/#modify-existing-merge-request-
    note), and CI and the server post as one user (README, "The MR note from CI"). A copy of
    the note by anyone else waives nothing. Expired waivers are not applied."""
    import time
    from dataclasses import replace

    from bot.gitlab import GitLabError
    from bot.report import NOTE_MARKER, plain, read_waiver_record
    from bot.waivers import Waiver, apply_waivers

    project_id, iid = target.mr_project_id, target.mr_iid
    if project_id is None or iid is None or result.report.error is not None:
        return result
    own: dict[str, Any] | None = None
    others: list[str] = []
    try:
        me = await gitlab.current_user()
        async for page in gitlab.merge_request_notes(project_id, iid):
            for note in page:
                if not isinstance(note, dict) or NOTE_MARKER not in str(note.get("body", "")):
                    continue
                author = note.get("author") or {}
                if author.get("id") == me.get("id"):
                    own = note
                    break
                others.append(plain(str(author.get("username", "")), 60))
            if own is not None:
                break
    except GitLabError as exc:
        notices.append(f"could not read the MR's notes for waivers ({exc}); nothing is waived")
        return result
    myself = plain(str(me.get("username", "")), 60)
    if own is None:
        if others:
            notices.append(
                f"the MR note with the bot's marker is by @{others[0]}, not by this token's "
                f"user @{myself}: its waivers are not trusted; nothing is waived"
            )
        return result
    try:
        recorded = read_waiver_record(str(own.get("body", "")))
    except ValueError as exc:
        notices.append(
            f"the bot's MR note has an unreadable waiver record ({exc}); nothing is waived"
        )
        return result
    if not recorded:
        return result
    now = time.time()
    waivers = [
        Waiver(
            project_id=project_id,
            mr_iid=iid,
            rule=item.rule,
            location="",
            fingerprints=item.fingerprints,
            reason=item.reason,
            author=item.by,
            created_at=0.0,
            expires_at=item.until,
            head_sha="",
        )
        for item in recorded
    ]
    report = apply_waivers(result.report, waivers, now)
    active = sum(1 for waiver in waivers if waiver.active(now))
    expired = len(waivers) - active
    notices.append(
        f"{active} waiver{'' if active == 1 else 's'} from the bot's MR note applied: "
        f"{len(report.waived)} finding(s) of this head waived"
        + (f"; {expired} expired" if expired else "")
    )
    return replace(result, report=report)


def _with_gitlab(git: Git, gitlab: GitLab, target: Target) -> GitSource:
    """The git Source, asking GitLab what git cannot tell: the project's facts (of the MR's
    target project) and verified signatures (where the commits are)."""
    from bot.local import GitSource
    from bot.source import GitLabSource

    if target.mr_project_id is None or target.source_project_id is None:
        return GitSource(git)
    return GitSource(
        git,
        GitLabSource(gitlab, target.mr_project_id, head_project_id=target.source_project_id),
    )


async def _judge(
    source: GitSource, gitlab: GitLab | None, target: Target, checks: Plan
) -> LocalResult:
    from bot.local import GitError, LocalResult, judge, read_inputs
    from bot.webhook import merge_request_from_api, squash_on_merge

    revisions = target.revisions
    try:
        inputs = await read_inputs(source, revisions, checks.needs)
    except GitError as exc:
        report = Report(head_sha=revisions.head, error=str(exc), config_source=checks.config.source)
        return LocalResult(report, (), revisions)
    merge_request = target.merge_request
    unjudgeable, partial = dict(target.unjudgeable), dict(target.partial)
    if gitlab is not None and target.mr_iid is not None and target.mr_project_id is not None:
        # The whole MR, not the CI variables' cut of it: full description, reviewers, squash.
        details = await gitlab.merge_request(target.mr_project_id, target.mr_iid)
        current = merge_request_from_api(details)
        if current is not None:
            merge_request = current.facts(squash=squash_on_merge(details))
            unjudgeable.pop("merge_request.reviewer", None)
            partial = {k: v for k, v in partial.items() if k not in DESCRIPTION_RULES}
    return judge(
        checks,
        revisions,
        inputs,
        merge_request=merge_request,
        unjudgeable=unjudgeable,
        partial=partial,
    )


# -- a commit not made yet (the commit-msg hook) ---------------------------------------------


@dataclass(frozen=True)
class MessageVerdict:
    findings: tuple[Finding, ...]
    config_source: str  # where the rules came from, for the hook's last line


def judge_commit_message(
    text: str, config_path: str | None, repository: str | Path = "."
) -> MessageVerdict:
    """The commit message rules on a commit `git commit` is about to make, `text` being the
    file the commit-msg hook is given. The rules of the default branch, at the merge-base as
    `check` reads them; outside a repository or before any commit, the default rules (and no
    author to judge). Raises ConfigError for an invalid config, GitError when git fails."""
    from bot.config import default_config
    from bot.engine import Inputs, context_for, evaluate, plan
    from bot.local import (
        ZERO_SHA,
        GitError,
        clean_message,
        comment_char,
        current_branch,
        default_branch,
        open_repository,
        pending_commit,
        read_config,
        rules_revision_for_new_commit,
    )
    from bot.source import Where

    git: Git | None
    try:
        git = open_repository(repository)
    except GitError:
        git = None  # not in a repository: the default rules, and no author to judge
    message = clean_message(text, comment_char(git))
    default = default_branch(git) if git is not None else None
    branch = current_branch(git) if git is not None else ""
    rules_from = rules_revision_for_new_commit(git, default) if git is not None else None
    if git is not None and rules_from:
        config = read_config(git, rules_from, config_path)
    else:
        config = default_config()

    target_branch = default[1] if default else branch
    commit_checks = plan(config, Scope.PUSH, target_branch).only(
        lambda rule: rule.id.startswith("commit.") and rule.needs <= {Need.COMMITS}
    )
    # One commit, not made yet: no range and no tree, only the branch it is made on.
    where = Where(base="", head=ZERO_SHA, tree_at="", branch=branch, target_branch=target_branch)
    context = context_for(
        commit_checks, Scope.PUSH, Inputs(commits=(pending_commit(git, message),)), where
    )
    outcomes = evaluate(commit_checks, context)
    return MessageVerdict(tuple(f for o in outcomes for f in o.findings), config.source)
