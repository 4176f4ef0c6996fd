"""`compliance-bot check` and `compliance-bot commit-msg`: the server's rules, run on git.

    compliance-bot check [PATH] [--base REV] [--head REV] [--config PATH]
                         [--format text|json|junit|codequality [--output FILE]]...
                         [--fail-on error|warning] [--post-note]
    compliance-bot commit-msg FILE

Both build the engine's plan from the same config the server reads and judge a `Context`
read from git (bot/local.py). `check` needs no network and no token; in a GitLab CI job
(`GITLAB_CI=true`) it takes the range and the MR's title, description and labels from CI's
predefined variables, and reads the rest from GitLab's API only when COMPLIANCE_TOKEN is set:
https://docs.gitlab.com/ci/variables/predefined_variables/#predefined-variables-for-merge-request-pipelines

Exit codes: 0 no finding that fails (errors; warnings too with `--fail-on warning`), 1 such
findings, 2 a usage error, an invalid config, or a check that could not complete.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.model import Report, Severity
from bot.report import (
    Links,
    failing,
    render_codequality,
    render_json,
    render_junit,
    render_note,
    render_rich,
    render_text,
)
from bot.rules.base import MergeRequestFacts, Need, Scope

if TYPE_CHECKING:
    # bot.local reads the config (pydantic models of every rule) and bot.engine the GitLab
    # client: imported where a command runs, so that `compliance-bot --help` stays fast.
    from bot.engine import Plan
    from bot.gitlab import GitLab
    from bot.local import Git, GitSource, LocalResult, Revisions
    from bot.settings import GitLabSettings

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

FORMATS = ("text", "json", "junit", "codequality")
# Written in CI when no --format asks for these reports elsewhere; the CI template names them.
CI_JUNIT_FILE = "compliance-junit.xml"
CI_CODEQUALITY_FILE = "gl-code-quality-report.json"

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


def register(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="check a git checkout (or a GitLab CI job) with the server's rules",
        description="Judge the commits base..head, the changed files and the repository's "
        "files with the rules of the config at the base revision. Locally it needs no "
        "network and no token. In GitLab CI (GITLAB_CI=true) the range and the merge "
        "request come from the predefined variables, and JUnit and Code Quality reports are "
        "written. Exit code: 0 passed, 1 findings that fail, 2 usage or config error.",
    )
    check.add_argument("path", nargs="?", default=".", help="the checkout (default: .)")
    check.add_argument(
        "--base",
        help="judge the commits after this revision (default: the merge-base with the "
        "default branch; in CI the MR's diff base, or the commit before the push)",
    )
    check.add_argument("--head", help="the last commit to judge (default: HEAD)")
    check.add_argument(
        "--config",
        default="",
        help="config file path in the repository, read at the base revision (default: "
        ".gitlab/compliance.yml, then .compliance.yml)",
    )
    check.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help="a group policy file (.gitlab/compliance-policy.yml format) to judge by, above "
        "the project's config; repeat it top group first",
    )
    check.add_argument(
        "--format",
        action=_OutputsAction,
        dest="outputs",
        metavar="{" + ",".join(FORMATS) + "}",
        help="an output format; repeat it for several. Each goes to stdout, or to the "
        "--output FILE that follows it (default: text)",
    )
    check.add_argument(
        "--output",
        action=_OutputsAction,
        dest="outputs",
        metavar="FILE",
        help="write the preceding --format to FILE",
    )
    check.add_argument(
        "--fail-on",
        choices=["error", "warning"],
        default="error",
        help="the lowest severity that makes the exit code 1 (default: error)",
    )
    check.add_argument(
        "--post-note",
        action="store_true",
        help=f"in an MR pipeline, create or update the MR note the server writes "
        f"(needs {TOKEN_VARIABLE})",
    )
    check.set_defaults(run=run_check, outputs=None)

    commit_msg = commands.add_parser(
        "commit-msg",
        help="check one commit message with the commit rules (a commit-msg hook)",
        description="Judge the commit message in FILE with the commit message rules of the "
        "config on the default branch. Findings go to stderr; exit code 1 when one is an "
        "error, else 0.",
    )
    commit_msg.add_argument("file", help="the commit message file git passes to the hook")
    commit_msg.add_argument("--config", default="", help="config file path in the repository")
    commit_msg.set_defaults(run=run_commit_msg)


class _OutputsAction(argparse.Action):
    """`--format` and `--output` edit one list of [format, file or None] in command-line
    order: `--format` adds an output to stdout, `--output FILE` sends the last one to FILE."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        outputs = list(getattr(namespace, self.dest) or [])
        if option_string == "--format":
            if values not in FORMATS:
                parser.error(f"--format: choose from {', '.join(FORMATS)}")
            outputs.append([values, None])
        else:
            if not outputs or outputs[-1][1] is not None:
                parser.error("--output FILE must follow the --format it is for")
            outputs[-1][1] = values
        setattr(namespace, self.dest, outputs)


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


async def _judge_and_post(
    settings: GitLabSettings | None,
    git: Git,
    target: Target,
    work: Plan | LocalResult | Unresolved,
    post_note: bool,
) -> tuple[LocalResult, str | None]:
    """Read and judge; with a token, through one client for the whole run (DESIGN.md,
    invariant 1), and post the note when asked."""
    from bot.gitlab import GitLabError, open_gitlab
    from bot.local import GitSource, LocalResult
    from bot.publish import upsert_note

    if settings is None:
        if target.in_ci and target.mr_iid is not None:
            _say(f"no {TOKEN_VARIABLE}: the MR's waivers are not read; nothing is waived")
        if isinstance(work, LocalResult):
            return work, None
        if isinstance(work, Unresolved):
            raise TypeError("a config with group policy needs a GitLab session")
        return await _judge(GitSource(git), None, target, work), None
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
            result = await _with_note_waivers(gitlab, target, result)
        if not post_note or target.mr_iid is None or target.mr_project_id is None:
            return result, None
        try:
            links = Links.for_merge_request(target.merge_request_url)
            note = render_note(result.report, links)
            await upsert_note(gitlab, target.mr_project_id, target.mr_iid, note)
        except GitLabError as exc:
            return result, f"could not post the MR note: {exc}"
        return result, None


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


def _say(message: str) -> None:
    print(f"compliance-bot: {message}", file=sys.stderr)


async def _with_note_waivers(gitlab: GitLab, target: Target, result: LocalResult) -> LocalResult:
    """The result with the waivers the server recorded in its MR note applied (CI has no
    journal). Only the bot's own note is trusted, the one by the token's user: GitLab lets
    only a note's author edit it (https://docs.gitlab.com/api/notes/#modify-existing-merge-
    request-note), and CI and the server post as one user (README, "The MR note from CI").
    A copy of the note by anyone else waives nothing. Expired waivers are not applied."""
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
        _say(f"could not read the MR's notes for waivers ({exc}); nothing is waived")
        return result
    myself = plain(str(me.get("username", "")), 60)
    if own is None:
        if others:
            _say(
                f"the MR note with the bot's marker is by @{others[0]}, not by this token's "
                f"user @{myself}: its waivers are not trusted; nothing is waived"
            )
        return result
    try:
        recorded = read_waiver_record(str(own.get("body", "")))
    except ValueError as exc:
        _say(f"the bot's MR note has an unreadable waiver record ({exc}); nothing is waived")
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
    _say(
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


# -- check ---------------------------------------------------------------------------------


def _error(message: str, outputs: Sequence[tuple[str, str | None]] = (), head: str = "") -> int:
    """Say what went wrong, and leave it in every report file asked for, so that the MR's
    widgets show why the job failed rather than nothing at all."""
    print(f"compliance-bot: {message}", file=sys.stderr)
    report = Report(head_sha=head, error=f"compliance-bot check could not run: {message}")
    for format_name, path in outputs:
        if path is None or format_name == "text":
            continue
        if format_name == "junit":
            text = render_junit(report)
        elif format_name == "json":
            text = render_json(report)
        else:
            # Code Quality holds findings in files; a usage error is in none (JUnit shows it).
            text = "[]\n"
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"compliance-bot: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
    return EXIT_USAGE


def run_check(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    return check(args, os.environ)


async def check(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from bot.config import ConfigError
    from bot.engine import config_failure, plan
    from bot.local import GitError, LocalResult, config_file, open_repository, read_config

    in_ci = env.get("GITLAB_CI") == "true"
    outputs: list[tuple[str, str | None]] = [(f, o) for f, o in (args.outputs or [])]
    if sum(1 for _, o in outputs if o is None) > 1:
        return _error("only one --format can go to stdout; give the others an --output FILE")
    if in_ci:
        asked = {f for f, _ in outputs}
        if "junit" not in asked:
            outputs.append(("junit", CI_JUNIT_FILE))
        if "codequality" not in asked:
            outputs.append(("codequality", CI_CODEQUALITY_FILE))
    if all(o is not None for _, o in outputs):
        outputs.insert(0, ("text", None))

    def fail(message: str) -> int:
        return _error(message, outputs, env.get("CI_COMMIT_SHA", ""))

    if args.post_note and not in_ci:
        return fail("--post-note works in a GitLab CI merge request pipeline only")

    try:
        git = open_repository(args.path)
        target = (
            ci_target(git, env, args.base, args.head)
            if in_ci
            else local_target(git, args.base, args.head)
        )
    except (GitError, UsageError) as exc:
        return fail(str(exc))
    revisions = target.revisions

    # A note belongs to a merge request; on a branch pipeline (the template runs on the
    # default branch too) there is none, and that is not a failure.
    post_note = bool(args.post_note and target.mr_iid is not None)
    if args.post_note and not post_note:
        print("compliance-bot: no merge request in this pipeline: no note to post", file=sys.stderr)
    token = env.get(TOKEN_VARIABLE, "").strip() if in_ci else ""
    settings = None
    if token:
        from pydantic import ValidationError

        from bot.settings import GitLabSettings, settings_error_line

        if not env.get("CI_SERVER_URL"):
            return fail(f"{TOKEN_VARIABLE} is set but CI_SERVER_URL is not")
        try:
            settings = GitLabSettings(gitlab_url=env["CI_SERVER_URL"], gitlab_token=token)
        except ValidationError as exc:
            return fail(settings_error_line(exc))
    elif post_note:
        print(
            f"compliance-bot: --post-note needs {TOKEN_VARIABLE} (a project or group access "
            "token; CI_JOB_TOKEN cannot post notes): reporting through the job's artifacts only",
            file=sys.stderr,
        )

    if settings is not None and args.policy:
        return fail(
            f"--policy is for a check without {TOKEN_VARIABLE}: with the token, the group "
            "policy is read from GitLab, as the server reads it"
        )
    if settings is not None and target.mr_project_id is None:
        return fail(f"{TOKEN_VARIABLE} is set but CI_PROJECT_ID is not: no group policy to read")
    try:
        # The command's own small files, read before any concurrent work starts; the CLI's
        # loop has nothing else to serve yet.
        policies = [(p, Path(p).read_text(encoding="utf-8")) for p in args.policy]  # noqa: ASYNC240
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"could not read policy: {exc}")
    work: Plan | LocalResult | Unresolved
    try:
        if settings is not None:
            # With a token, the group policy and `extends` are read from GitLab once its
            # session is open (`_judge_and_post`); here only the file at the trusted revision.
            work = Unresolved(config_file(git, revisions.config_rev, args.config or None))
        else:
            config = read_config(git, revisions.config_rev, args.config or None, policies=policies)
            work = plan(config, revisions.scope, revisions.target_branch)
    except ConfigError as exc:
        work = LocalResult(config_failure(revisions.head, exc), (), revisions)
    except GitError as exc:
        return fail(str(exc))
    result, note_problem = await _judge_and_post(settings, git, target, work, post_note)
    for line in result.report.policy_notes:
        # The policies that applied and each weakening they ignored: the note's footer says
        # it too, and the job's log is where a maintainer looks first.
        print(f"compliance-bot: {line}", file=sys.stderr)

    fail_on = Severity(args.fail_on)
    try:
        _write(outputs, result, fail_on)
    except OSError as exc:
        return _error(f"cannot write {exc.filename}: {exc.strerror}")
    if note_problem:
        print(f"compliance-bot: {note_problem}", file=sys.stderr)
    return exit_code(result.report, fail_on, note_failed=note_problem is not None)


def exit_code(report: Report, fail_on: Severity, *, note_failed: bool = False) -> int:
    if report.error is not None:
        return EXIT_USAGE
    # Waived findings, and those already on the target branch, fail nothing (as on GitLab).
    if any(f.severity in failing(fail_on) and f.counts for f in report.findings):
        return EXIT_FINDINGS
    return EXIT_USAGE if note_failed else EXIT_OK


def render(format_name: str, result: LocalResult, fail_on: Severity) -> str:
    report, not_judged = result.report, result.not_judged
    if format_name == "json":
        revisions = result.revisions
        extra = {
            "base_sha": revisions.base,
            "scope": revisions.scope.value,
            "branch": revisions.branch,
            "target_branch": revisions.target_branch,
        }
        return render_json(report, not_judged=not_judged, extra=extra)
    if format_name == "junit":
        return render_junit(report, not_judged=not_judged, fail_on=fail_on)
    if format_name == "codequality":
        return render_codequality(report, known_paths=result.known_paths)
    return render_text(report, not_judged=not_judged)


def _write(
    outputs: Sequence[tuple[str, str | None]], result: LocalResult, fail_on: Severity
) -> None:
    for format_name, path in outputs:
        if path is not None:
            # UTF-8 without a BOM, which GitLab's Code Quality parser rejects.
            Path(path).write_text(render(format_name, result, fail_on), encoding="utf-8")
        elif format_name == "text" and sys.stdout.isatty():
            from rich.console import Console

            Console().print(render_rich(result.report, not_judged=result.not_judged))
        else:
            sys.stdout.write(render(format_name, result, fail_on))
    sys.stdout.flush()


# -- commit-msg ----------------------------------------------------------------------------

# `git commit --verbose` puts the diff below this line; git drops it and all that follows.
# https://git-scm.com/docs/git-commit#Documentation/git-commit.txt---cleanupltmodegt
_SCISSORS = re.compile(r"^. -{24} >8 -{24}\n", re.MULTILINE)


def clean_message(text: str, comment_char: str = "#") -> str:
    """The message as git will store it: what `git commit`'s default cleanup leaves.

    The commit-msg hook sees the file before git cleans it up (builtin/commit.c runs the hook,
    then strips): comments, the scissors line and what follows it, trailing whitespace, and
    repeated or surrounding blank lines go, as `git stripspace --strip-comments` does.
    """
    text = text.replace("\r\n", "\n")
    scissors = _SCISSORS.search(text)
    if scissors and text[scissors.start()] == comment_char:
        text = text[: scissors.start()]
    lines = [line.rstrip() for line in text.split("\n") if not line.startswith(comment_char)]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def run_commit_msg(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, default_config
    from bot.engine import Inputs, context_for, evaluate, plan
    from bot.local import (
        ZERO_SHA,
        GitError,
        comment_char,
        current_branch,
        default_branch,
        merge_base,
        open_repository,
        pending_commit,
        read_config,
    )
    from bot.rules.catalog import rule_by_id
    from bot.source import Where

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        return _error(f"{args.file}: cannot read: {exc.strerror}")
    git: Git | None
    try:
        git = open_repository(".")
    except GitError:
        git = None  # not in a repository: the default rules, and no author to judge
    message = clean_message(raw.decode("utf-8", "replace"), comment_char(git))

    # The rules of the default branch (at the merge-base, as `check` reads them), so the hook
    # judges as the merge request will be judged. No commit yet: the default rules.
    default = default_branch(git) if git is not None else None
    branch = current_branch(git) if git is not None else ""
    try:
        head = git.rev("HEAD") if git is not None else None
        rules_from = head
        if git is not None and default is not None:
            rules_from = merge_base(git, default[0], head) if head else git.rev(default[0])
        if git is not None and rules_from:
            config = read_config(git, rules_from, args.config or None)
        else:
            config = default_config()
    except ConfigError as exc:
        print(f"compliance-bot: invalid {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FINDINGS
    except GitError as exc:
        return _error(str(exc))

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
    findings = [f for o in outcomes for f in o.findings]
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    for finding in findings:
        # The rule's own advice: a finding's fix speaks of rewording an existing commit,
        # and this one does not exist yet.
        fix = rule_by_id(finding.rule).fix or finding.fix
        print(f"{finding.severity.value}: {finding.rule}: {finding.message}", file=sys.stderr)
        if fix:
            print(f"  fix: {fix}", file=sys.stderr)
    if errors:
        print(
            f"compliance-bot: the commit message has {errors} error(s) "
            f"(rules from {config.source})",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    return EXIT_OK
