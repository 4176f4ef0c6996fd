"""`compliance-bot check` and `compliance-bot commit-msg`: the server's rules, run on git.

    compliance-bot check [PATH] [--base REV] [--head REV] [--config PATH]
                         [--format text|json|junit|codequality [--output FILE]]...
                         [--fail-on error|warning] [--post-note]
    compliance-bot commit-msg FILE

Both build the engine's plan from the same config the server reads and judge a `Context`
read from git (bot/local.py). This module, a face, parses the arguments and the environment
and prints and writes what comes back; which range, the reading and the judging, and GitLab
when a token is given, are bot/checkout.py's. `check` needs no network and no token; in a
GitLab CI job (`GITLAB_CI=true`) it takes the range and the MR's title, description and labels
from CI's predefined variables, and reads the rest from GitLab's API only when
COMPLIANCE_TOKEN is set:
https://docs.gitlab.com/ci/variables/predefined_variables/#predefined-variables-for-merge-request-pipelines

Exit codes: 0 no finding that fails (errors; warnings too with `--fail-on warning`), 1 such
findings, 2 a usage error, an invalid config, or a check that could not complete.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.checkout import (
    TOKEN_VARIABLE,
    UsageError,
    ci_target,
    judge_and_post,
    local_target,
    plan_for,
)
from bot.model import Report, Severity
from bot.report import (
    failing,
    render_codequality,
    render_json,
    render_junit,
    render_rich,
    render_text,
)

if TYPE_CHECKING:
    # bot.local reads the config (pydantic models of every rule) and bot.engine the GitLab
    # client: imported where a command runs, so that `compliance-bot --help` stays fast.
    from bot.local import LocalResult

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

FORMATS = ("text", "json", "junit", "codequality")
# Written in CI when no --format asks for these reports elsewhere; the CI template names them.
CI_JUNIT_FILE = "compliance-junit.xml"
CI_CODEQUALITY_FILE = "gl-code-quality-report.json"


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
    from bot.config import ConfigError, read_config_file
    from bot.local import GitError, open_repository

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
        policies = [(p, read_config_file(p)) for p in args.policy]
    except OSError as exc:
        return fail(f"could not read policy: {exc}")
    except ConfigError as exc:
        return fail(f"could not read policy: {'; '.join(str(p) for p in exc.problems)}")
    try:
        work = plan_for(
            git, revisions, args.config or None, policies, from_gitlab=settings is not None
        )
    except GitError as exc:
        return fail(str(exc))
    checked = await judge_and_post(settings, git, target, work, post_note)
    for line in checked.notices:
        print(f"compliance-bot: {line}", file=sys.stderr)
    result, note_problem = checked.result, checked.note_problem
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


def run_commit_msg(args: argparse.Namespace) -> int:
    from bot.checkout import judge_commit_message
    from bot.config import ConfigError
    from bot.local import GitError
    from bot.rules.catalog import rule_by_id

    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        return _error(f"{args.file}: cannot read: {exc.strerror}")
    try:
        verdict = judge_commit_message(raw.decode("utf-8", "replace"), args.config or None)
    except ConfigError as exc:
        print(f"compliance-bot: invalid {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FINDINGS
    except GitError as exc:
        return _error(str(exc))

    errors = sum(1 for f in verdict.findings if f.severity is Severity.ERROR)
    for finding in verdict.findings:
        # The rule's own advice: a finding's fix speaks of rewording an existing commit,
        # and this one does not exist yet.
        fix = rule_by_id(finding.rule).fix or finding.fix
        print(f"{finding.severity.value}: {finding.rule}: {finding.message}", file=sys.stderr)
        if fix:
            print(f"  fix: {fix}", file=sys.stderr)
    if errors:
        print(
            f"compliance-bot: the commit message has {errors} error(s) "
            f"(rules from {verdict.config_source})",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    return EXIT_OK
