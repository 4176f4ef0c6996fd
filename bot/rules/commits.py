"""The `commit.*` rules: commit messages, sign-offs, authors, merge commits and signatures.

Message rules judge `messages_to_judge(context)`: each commit, or the MR title when the MR
will be squashed (that is what lands on the target branch). By default they skip what
commitlint skips (`default_ignores`: merges, reverts, "Reapply", fixup!/squash!/amend! and
version bumps), so that the two default rules give commitlint's verdict. `commit.no_fixup`
has no such option: it exists to catch fixup! commits, and a merge or revert subject never
starts with "fixup!" or "WIP" anyway.

Identity rules (`commit.dco`, `commit.author_email`, `commit.no_merge_commits`,
`commit.signed`) judge `context.commits` even when the MR squashes: they are about who made
each commit and how, which a squash-title policy does not change.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import Field, field_validator, model_validator

from bot.model import Commit, Severity
from bot.patterns import MAX_TEXT_LENGTH, Regex, compile_regex
from bot.rules import conventional
from bot.rules.base import (
    BOTH_SCOPES,
    MR_ONLY,
    C,
    Context,
    DocumentedSeverity,
    Message,
    Need,
    Problem,
    Rule,
    RuleConfig,
    Scope,
    commit_location,
    messages_to_judge,
)

__all__ = [
    "RULES",
    "AuthorEmailConfig",
    "BodyBlankLineConfig",
    "BodyLineLengthConfig",
    "ConventionalConfig",
    "DcoConfig",
    "NoFixupConfig",
    "NoMergeCommitsConfig",
    "SignedConfig",
    "SubjectLengthConfig",
    "SubjectTrailingPeriodConfig",
]

_DEFAULT_IGNORES_HELP: Final = (
    "Skip the messages commitlint skips by default (its `defaultIgnores`): merge commits "
    "('Merge branch …', 'Merge … into …', 'Merge pull request …'), 'Revert …', 'Reapply …', "
    "'fixup!', 'squash!', 'amend!' and version bumps such as 'v1.2.3'."
)


# ------------------------------------------------------------------------------------------
# Shared helpers
# ------------------------------------------------------------------------------------------


def _subject(text: str) -> str:
    """The subject line: git drops leading blank lines from a message, then takes line 1."""
    return text.lstrip("\r\n").split("\n", 1)[0].rstrip("\r")


def _messages_to_lint(context: Context, default_ignores: bool) -> Iterator[Message]:
    """The messages a message rule looks at: `messages_to_judge(context)` less those it
    passes without looking, commitlint's default ignores (when on) and empty messages,
    which commitlint skips too ("Commit is empty")."""
    for message in messages_to_judge(context):
        text = message.text
        if not text.strip(conventional.JS_WHITESPACE):
            continue
        if not (default_ignores and conventional.is_ignored(text)):
            yield message


def _reword_fix(message: Message, what: str) -> str:
    """How to change a judged message: the MR title, or one commit by an interactive rebase."""
    if message.commit is None:
        return f"{what} Edit the merge request title: it becomes the squash commit's message."
    sha = message.commit.short_sha
    return (
        f"{what} Reword the commit: `git commit --amend` if it is the last one, otherwise "
        f"`git rebase -i {sha}~` and mark {sha} `reword` (and each other commit listed); then "
        "`git push --force-with-lease`."
    )


def _rebase_base(context: Context) -> str:
    """What to rebase onto to rewrite every judged commit: the MR's target, or the parent of
    the oldest pushed commit."""
    if context.scope is Scope.MERGE_REQUEST:
        return f"origin/{context.target_branch}"
    if context.commits:
        return f"{context.commits[0].short_sha}~"
    return "HEAD~1"


# Webhook payloads show this instead of the email of a user without a public email
# (https://docs.gitlab.com/user/project/integrations/webhook_events/); a push judged from
# its payload can carry it.
_REDACTED: Final = "[REDACTED]"


def _is_merge(commit: Commit) -> bool:
    # Parents come from the API. Commits taken from a push webhook payload have none, so a
    # merge among them is not recognised as one.
    return len(commit.parent_ids) > 1


def _commit_rule(
    rule_id: str,
    title: str,
    config: type[C],
    check: Callable[[Context, C], Iterable[Problem]],
    *more_needs: Need,
    fix: str,
    scopes: frozenset[Scope] = BOTH_SCOPES,
) -> Rule[C]:
    """A rule that judges the commits under review (`context.commits`), and whatever else it
    needs."""
    return Rule(rule_id, title, config, check, frozenset({Need.COMMITS, *more_needs}), scopes, fix)


class _MessageRuleConfig(RuleConfig):
    """The config of a rule that judges commit messages. Each declares `default_ignores`
    itself, as its last option: declared here, pydantic would list it first in the schema."""

    if TYPE_CHECKING:
        default_ignores: bool


M = TypeVar("M", bound=_MessageRuleConfig)


def _message_rule(
    rule_id: str,
    title: str,
    config: type[M],
    check: Callable[[Message, M], Iterable[Problem]],
    *,
    fix: str,
) -> Rule[M]:
    """A rule that judges each message of `_messages_to_lint`, commitlint's default ignores
    left out unless its config's `default_ignores` is off."""

    def judge_messages(context: Context, config: M) -> Iterator[Problem]:
        for message in _messages_to_lint(context, config.default_ignores):
            yield from check(message, config)

    return _commit_rule(rule_id, title, config, judge_messages, fix=fix)


# ------------------------------------------------------------------------------------------
# commit.conventional
# ------------------------------------------------------------------------------------------

# Large enough that header-max-length never fires for length: it is commit.subject_length's
# business. commitlint still reports a *missing* header under that name; it goes there too.
_UNLIMITED: Final = 1 << 62
_HEADER_MAX_LENGTH: Final = "header-max-length"


class ConventionalConfig(_MessageRuleConfig):
    severity: DocumentedSeverity = "error"
    types: list[str] = Field(
        default_factory=lambda: list(conventional.DEFAULT_TYPES),
        min_length=1,
        description="Allowed types (commitlint's `type-enum`); the default is "
        "@commitlint/config-conventional's list.",
    )
    scopes: list[str] = Field(
        default_factory=list,
        description="Allowed scopes (commitlint's `scope-enum`: exact, case-sensitive; a "
        "scope 'a/b', 'a,b' or 'a, b' must have every part allowed). Empty: any scope.",
    )
    require_scope: bool = Field(
        False, description="Require a scope, as in `fix(api): …` (commitlint's `scope-empty`)."
    )
    allow_breaking: bool = Field(
        True,
        description="Allow the breaking-change marker `!` before the colon (`feat!: …`). "
        "A `BREAKING CHANGE:` footer is not affected.",
    )
    default_ignores: bool = Field(True, description=_DEFAULT_IGNORES_HELP)


def _scope_not_allowed(scope: str, allowed: list[str]) -> bool:
    """commitlint's scope-enum ("always"): every segment split on `/`, `\\` or `, ?` must be
    allowed, or the whole scope must be. Source: conventional-changelog/commitlint
    @08065457df2818265523a21aaabc9940acf66647 @commitlint/rules/src/scope-enum.ts."""
    segments = re.split(r"/|\\|, ?", scope)
    return not (all(s in allowed for s in segments) or scope in allowed)


def _conventional_form(config: ConventionalConfig) -> str:
    shape = (
        "`type(scope): subject`"
        if config.require_scope
        else "`type(scope): subject` or `type: subject`"
    )
    lines = [
        f"Write the first line as {shape}, e.g. `fix(api): handle empty pages`"
        " (lower-case subject, no final full stop).",
        "Types: " + ", ".join(config.types) + ".",
    ]
    if config.scopes:
        lines.append("Scopes: " + ", ".join(config.scopes) + ".")
    return " ".join(lines)


def _check_conventional(message: Message, config: ConventionalConfig) -> Iterator[Problem]:
    """One finding per message and level: a header that is not a Conventional Commit is one
    finding, whatever the number of commitlint sub-rules it breaks (issue 18). Each finding
    `covers` the sub-rules it states, so a dedicated rule stating one of them again (a
    trailing full stop, a missing blank line) is dropped by the engine."""
    # commitlint's warnings (level 1: body-leading-blank, footer-leading-blank) stay below
    # the rule's errors, and never above its configured level.
    warning = Severity.INFO if config.severity == "info" else Severity.WARNING
    fix = _reword_fix(message, _conventional_form(config))
    errors: list[tuple[str, str]] = []  # (commitlint rule, what it says)
    warnings: list[tuple[str, str]] = []
    for lint_problem in conventional.lint(
        message.text,
        types=config.types,
        header_max_length=_UNLIMITED,
        default_ignores=False,  # _messages_to_lint applied them
    ):
        if lint_problem.rule == _HEADER_MAX_LENGTH:
            continue
        found = warnings if lint_problem.level == "warning" else errors
        found.append((lint_problem.rule, lint_problem.message))
    header = conventional.parsed_header(message.text)
    breaking = header is not None and header.breaking and not config.allow_breaking
    if header is not None:
        if config.require_scope and not header.scope:
            # commitlint's scope-empty message.
            errors.append(("scope-empty", "scope may not be empty"))
        if config.scopes and header.scope and _scope_not_allowed(header.scope, config.scopes):
            errors.append(
                (
                    "scope-enum",
                    f'scope "{header.scope}" must be one of [{", ".join(config.scopes)}]',
                )
            )
    elif {"type-empty", "subject-empty"} <= {rule for rule, _ in errors}:
        # Not `type: subject` at all: one fact, though commitlint names it twice.
        first = next(i for i, (rule, _) in enumerate(errors) if rule == "subject-empty")
        errors = [e for e in errors if e[0] not in ("type-empty", "subject-empty")]
        errors.insert(
            first,
            ("type-empty, subject-empty", 'the header is not "type(scope): subject"'),
        )
    if errors or breaking:
        texts = [f"{text} ({rule})" for rule, text in errors]
        covers = {name for rule, _ in errors for name in rule.split(", ")}
        if breaking:
            texts.append('the breaking-change marker "!" is not allowed here')
            covers.add("breaking")
        only_breaking = breaking and not errors
        yield Problem(
            message="; ".join(texts),
            location=message.location,
            fix=_reword_fix(message, "Drop the `!` before the colon.") if only_breaking else fix,
            covers=frozenset(covers),
        )
    if warnings:
        yield Problem(
            message="; ".join(f"{text} ({rule})" for rule, text in warnings),
            location=message.location,
            fix=fix,
            severity=warning,
            covers=frozenset(rule for rule, _ in warnings),
        )


# ------------------------------------------------------------------------------------------
# commit.subject_length
# ------------------------------------------------------------------------------------------


class SubjectLengthConfig(_MessageRuleConfig):
    severity: DocumentedSeverity = "error"
    max_length: int = Field(
        conventional.DEFAULT_HEADER_MAX_LENGTH,
        ge=1,
        description="Longest allowed first line, counted as commitlint's `header-max-length` "
        "counts (JavaScript length: an emoji counts 2). commitlint's config-conventional "
        "says 100; 72 is the width git and GitLab show.",
    )
    default_ignores: bool = Field(True, description=_DEFAULT_IGNORES_HELP)


def _check_subject_length(message: Message, config: SubjectLengthConfig) -> Iterator[Problem]:
    for lint_problem in conventional.lint(
        message.text, header_max_length=config.max_length, default_ignores=False
    ):
        if lint_problem.rule != _HEADER_MAX_LENGTH:
            continue
        if lint_problem.message == "header is missing":  # e.g. only "gpg:" on line 1
            what = "Write a first line that says what the commit does."
        else:
            what = (
                f"Shorten the first line to {config.max_length} characters or fewer; "
                "put the details in the body, after a blank line."
            )
        yield Problem(
            f"{lint_problem.message} ({_HEADER_MAX_LENGTH})",
            message.location,
            _reword_fix(message, what),
            covers=frozenset({_HEADER_MAX_LENGTH}),
        )


# ------------------------------------------------------------------------------------------
# commit.subject_trailing_period
# ------------------------------------------------------------------------------------------


class SubjectTrailingPeriodConfig(_MessageRuleConfig):
    severity: DocumentedSeverity = "off"
    default_ignores: bool = Field(True, description=_DEFAULT_IGNORES_HELP)


def _check_subject_trailing_period(
    message: Message, config: SubjectTrailingPeriodConfig
) -> Iterator[Problem]:
    # Like commitlint's subject-full-stop, an ellipsis "..." is not a full stop; unlike
    # it, trailing whitespace is ignored (the subject still ends in a period).
    subject = _subject(message.text).rstrip(conventional.JS_WHITESPACE)
    if subject.endswith(".") and not subject.endswith("..."):
        yield Problem(
            "the subject ends with a full stop",
            message.location,
            _reword_fix(message, "Remove the final `.` from the first line."),
            covers=frozenset({"subject-full-stop"}),  # commitlint's name for it
        )


# ------------------------------------------------------------------------------------------
# commit.body_blank_line
# ------------------------------------------------------------------------------------------


class BodyBlankLineConfig(_MessageRuleConfig):
    severity: DocumentedSeverity = "off"
    default_ignores: bool = Field(True, description=_DEFAULT_IGNORES_HELP)


def _is_blank(line: str) -> bool:
    # git's pretty.c is_blank_line(): a line of only whitespace separates paragraphs, so the
    # subject (git's first paragraph) ends there too. git's isspace() is ASCII space, \t, \n
    # and \r only (git/git ctype.c).
    return not line.strip(" \t\n\r")


def _check_body_blank_line(message: Message, config: BodyBlankLineConfig) -> Iterator[Problem]:
    lines = message.text.strip("\r\n").split("\n")
    if len(lines) > 1 and not _is_blank(lines[1]):
        yield Problem(
            "no blank line between the subject and the body: git and GitLab show both "
            "lines as the title",
            message.location,
            _reword_fix(message, "Insert an empty line after the first line."),
            covers=frozenset({"body-leading-blank"}),  # commitlint's name for it
        )


# ------------------------------------------------------------------------------------------
# commit.body_line_length
# ------------------------------------------------------------------------------------------

# commitlint's URL exemption (@commitlint/ensure/src/max-line-length.ts): /\bhttps?:\/\/\S+/
# on each line. A line that merely contains a URL is exempt, not only a URL-only line: a
# "Link: <url>" trailer or "See <url>" cannot be wrapped either.
_URL_RE: Final = re.compile(
    rf"(?<![A-Za-z0-9_])https?://[^{conventional.JS_WHITESPACE}]+", re.ASCII
)


class BodyLineLengthConfig(_MessageRuleConfig):
    severity: DocumentedSeverity = "off"
    max_length: int = Field(
        100,
        ge=1,
        description="Longest allowed line after the subject (body and trailers), counted as "
        "commitlint counts (JavaScript length: an emoji counts 2).",
    )
    ignore_urls: bool = Field(
        True,
        description="Do not judge lines that contain an http:// or https:// URL, as "
        "commitlint does: a URL cannot be wrapped.",
    )
    default_ignores: bool = Field(True, description=_DEFAULT_IGNORES_HELP)


def _check_body_line_length(message: Message, config: BodyLineLengthConfig) -> Iterator[Problem]:
    lines = re.split(r"\r?\n", message.text.strip("\r\n"))
    too_long = [
        (number, conventional.js_length(line))
        for number, line in enumerate(lines[1:], start=2)
        if conventional.js_length(line) > config.max_length
        and not (config.ignore_urls and _URL_RE.search(line))
    ]
    if not too_long:
        return
    number, length = too_long[0]
    more = f" ({len(too_long) - 1} more lines too)" if len(too_long) > 1 else ""
    yield Problem(
        f"line {number} of the message has {length} characters, more than "
        f"{config.max_length}{more}",
        message.location,
        _reword_fix(
            message,
            f"Wrap the body at {config.max_length} characters or fewer "
            f"(e.g. `fmt -w {config.max_length}` in your editor).",
        ),
        covers=frozenset({"body-max-line-length"}),  # commitlint's name
    )


# ------------------------------------------------------------------------------------------
# commit.no_fixup
# ------------------------------------------------------------------------------------------

# git rebase --autosquash acts on subjects starting "fixup! ", "squash! " or "amend! "
# (https://git-scm.com/docs/git-rebase#Documentation/git-rebase.txt---autosquash);
# commitlint's is-ignored matches /^(amend|fixup|squash)!/, without the space: so do we.
_AUTOSQUASH_RE: Final = re.compile(r"(fixup|squash|amend)!")
# "WIP", "wip: …", "WIP - …", "[WIP] …" (any case) at the start; not "Wipe …" or "wiping".
_WIP_RE: Final = re.compile(r"\s*(?:\[wip\]|wip(?![A-Za-z0-9_]))", re.IGNORECASE | re.ASCII)


class NoFixupConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _check_no_fixup(context: Context, config: NoFixupConfig) -> Iterator[Problem]:
    for message in messages_to_judge(context):
        subject = _subject(message.text)
        autosquash = _AUTOSQUASH_RE.match(subject)
        if autosquash is not None:
            marker = autosquash.group(0)
            if message.commit is None:
                fix = _reword_fix(message, f"Remove `{marker}` from the title.")
            else:
                fix = (
                    "Fold it into the commit it fixes: `git rebase -i --autosquash "
                    f"{_rebase_base(context)}`, then `git push --force-with-lease`."
                )
            yield Problem(
                f'a "{marker}" commit: it is meant to be squashed before merging',
                message.location,
                fix,
            )
        elif _WIP_RE.match(subject):
            yield Problem(
                "a work-in-progress (WIP) commit",
                message.location,
                _reword_fix(
                    message,
                    "Finish the work, then squash the WIP commit into a finished one "
                    "(`squash` in `git rebase -i`) or reword it without the WIP marker.",
                ),
            )


# ------------------------------------------------------------------------------------------
# commit.dco
# ------------------------------------------------------------------------------------------
#
# Ported from the DCO GitHub app, dcoapp/app @ 83946bbf5bbf63bd84d04aaa15ce55931b95d8f2
# (lib/dco.js, README.md, test/dco.test.js), default mode:
#
# * Exempt: merge commits (more than one parent) and commits whose GitHub account is of type
#   "Bot". A GitLab commit carries no account type, so bots are listed by email in
#   `exempt_authors` instead (none by default: a commit's email is not authenticated).
# * Sign-offs: every line matching /^Signed-off-by: (.*) <(.*)>\s*$/gim -- any line of the
#   message, "signed-off-by:" in any case, greedy name and email.
# * With sign-offs present, the author email must pass the `email-validator` package
#   (2.0.4 in the app's lock file; manishsaraan/email-validator
#   @06893d29f382d2d98d030a4337fc055dfac095f9 index.js).
# * A sign-off is valid when its name is the author's or the committer's and its email is
#   the author's or the committer's, each compared lower-cased. The bot's Commit has no
#   committer, so only the author counts here: a sign-off by a committer who is not the
#   author does not pass (stricter than the app).
# * One sign-off: it must be valid. Several: one of them must be.
# * Out of scope: `allowRemediationCommits` (individual / third-party remediation commits)
#   and `require.members: false` (skipping verified-signature commits of org members).
#
# `match_author: false` is GitLab's own push rule instead, `reject_non_dco_commits`: the
# message must match the RE2 regex 'Signed-off-by:.+<.+@.+>' anywhere, case-sensitively,
# whoever it names (gitlab-org/gitlab ee/app/models/concerns/push_ruleable.rb,
# DCO_COMMIT_REGEX).

_SIGNOFF_PREFIX: Final = "signed-off-by: "
# RE2, as GitLab runs it: linear time on a message the author controls.
_GITLAB_DCO_RE: Final = compile_regex(r"Signed-off-by:.+<.+@.+>")
# email-validator's `tester`; JS `$` without the `m` flag is Python's `\Z`.
_EMAIL_RE: Final = re.compile(
    r"[-!#$%&'*+/0-9=?A-Z^_a-z`{|}~](\.?[-!#$%&'*+/0-9=?A-Z^_a-z`{|}~])*"
    r"@[a-zA-Z0-9](-*\.?[a-zA-Z0-9])*\.[a-zA-Z](-?[a-zA-Z0-9])+\Z"
)


@dataclass(frozen=True)
class _SignOff:
    name: str
    email: str


def _sign_off(line: str) -> _SignOff | None:
    r"""/^Signed-off-by: (.*) <(.*)>\s*$/i on one line, without a backtracking regex (on a
    long line of " <" and ">" that is quadratic or worse).

    The pattern holds when the line starts with the prefix (JS `i` without `u` folds ASCII
    only) and, whitespace trimmed, ends with ">". Both groups are greedy, so the email is
    everything after the last " <" before that ">", and the name everything before it.
    """
    head = line[: len(_SIGNOFF_PREFIX)]
    if not head.isascii() or head.lower() != _SIGNOFF_PREFIX:
        return None
    rest = line[len(_SIGNOFF_PREFIX) :].rstrip(conventional.JS_WHITESPACE)
    if not rest.endswith(">"):
        return None
    split = rest.rfind(" <", 0, len(rest) - 1)
    if split < 0:
        return None
    return _SignOff(rest[:split], rest[split + 2 : -1])


def _sign_offs(message: str) -> list[_SignOff]:
    # The app's /m regex works line by line: `^` and `$` match at every JS line terminator,
    # `.` stops at them, and the trailing \s* can only end at the end of a line.
    lines = conventional.JS_LINE_TERMINATOR_RE.split(message)
    return [s for s in map(_sign_off, lines) if s is not None]


def _valid_email(email: str) -> bool:
    """email-validator's validate(): the length limits first, then its regex."""
    if not email:
        return False
    parts = email.split("@")
    if len(parts) != 2:
        return False
    account, address = parts
    if conventional.js_length(account) > 64 or conventional.js_length(address) > 255:
        return False
    if any(conventional.js_length(part) > 63 for part in address.split(".")):
        return False
    return _EMAIL_RE.match(email) is not None


class DcoConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    match_author: bool = Field(
        True,
        description="Require a `Signed-off-by: Name <email>` line naming the commit author "
        "(name and email compared case-insensitively), as the DCO GitHub app does. False: "
        "any `Signed-off-by: Name <email>` line passes, as GitLab's `reject_non_dco_commits` "
        "push rule does.",
    )
    exempt_authors: list[str] = Field(
        default_factory=list,
        description="Author emails whose commits need no sign-off: glob patterns, compared "
        "case-insensitively, e.g. GitLab's access-token bots `project_*_bot_*@noreply.*` and "
        "`group_*_bot_*@noreply.*`. Commit emails are not authenticated: list only what you "
        "trust. Merge commits are always exempt.",
    )


def _exempt_author(commit: Commit, patterns: list[str]) -> bool:
    email = commit.author_email.lower()
    return any(fnmatch.fnmatchcase(email, p.lower()) for p in patterns)


def _dco_problem(commit: Commit, sign_offs: list[_SignOff]) -> str | None:
    """The DCO app's verdict on one commit (its wording), or None when it passes."""
    author = f"{commit.author_name} <{commit.author_email}>"
    if not sign_offs:
        return "the sign-off is missing: no `Signed-off-by: Name <email>` line"
    if not _valid_email(commit.author_email):
        hidden = (
            " (GitLab hides the email of users without a public email in webhook payloads)"
            if commit.author_email == _REDACTED
            else ""
        )
        shown = commit.author_email or "(empty)"
        return f"the author email {shown} is not a valid email address{hidden}"
    # The DCO app accepts a sign-off by the author or by the committer.
    names = {n.lower() for n in (commit.author_name, commit.committer_name) if n}
    emails = {e.lower() for e in (commit.author_email, commit.committer_email) if e}
    if any(s.name.lower() in names and s.email.lower() in emails for s in sign_offs):
        return None
    if len(sign_offs) == 1:
        got = sign_offs[0]
        return f'expected a sign-off by "{author}", but got "{got.name} <{got.email}>"'
    found = ", ".join(f'"{s.name} <{s.email}>"' for s in sign_offs)
    return f'cannot find a sign-off by "{author}" in [{found}]'


def _check_dco(context: Context, config: DcoConfig) -> Iterator[Problem]:
    fix = (
        "Sign off as the commit author: `git commit --amend -s --no-edit` for the last "
        f"commit, or `git rebase --signoff {_rebase_base(context)}` for all of them; then "
        "`git push --force-with-lease`. `git commit -s` signs off new commits, with the "
        "name and email of `git config user.name` and `user.email`."
    )
    for commit in context.commits:
        if _is_merge(commit) or _exempt_author(commit, config.exempt_authors):
            continue
        if config.match_author:
            problem = _dco_problem(commit, _sign_offs(commit.message))
        elif _GITLAB_DCO_RE.search(commit.message[:MAX_TEXT_LENGTH]) is None:
            problem = "the sign-off is missing: no `Signed-off-by: Name <email>` line"
        else:
            problem = None
        if problem is not None:
            yield Problem(problem, commit_location(commit), fix)


# ------------------------------------------------------------------------------------------
# commit.author_email
# ------------------------------------------------------------------------------------------


class AuthorEmailConfig(RuleConfig):
    severity: DocumentedSeverity = "off"
    pattern: Regex | None = Field(
        None,
        description="RE2 regex the author email must match. Searched, not anchored, and "
        "case-sensitive, as GitLab's `author_email_regex` push rule: write "
        "`@example\\.com$`, or `(?i)` for any case.",
    )
    allowed_domains: list[str] = Field(
        default_factory=list,
        description="Domains the author email must be at (the part after `@`, compared "
        "case-insensitively), e.g. `example.com`.",
    )
    allow_subdomains: bool = Field(
        False,
        description="Also allow subdomains of `allowed_domains` (`dev.example.com` for "
        "`example.com`).",
    )

    @field_validator("allowed_domains")
    @classmethod
    def normalize_domains(cls, domains: list[str]) -> list[str]:
        cleaned = []
        for domain in domains:
            domain = domain.strip().lower().removeprefix("@")
            if not domain or "@" in domain or any(c.isspace() for c in domain):
                raise ValueError(f"{domain!r} is not a domain name")
            cleaned.append(domain)
        return cleaned

    @model_validator(mode="after")
    def needs_something_to_check(self) -> AuthorEmailConfig:
        if self.severity != "off" and self.pattern is None and not self.allowed_domains:
            raise ValueError("commit.author_email needs `pattern` or `allowed_domains`")
        return self


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> Any:
    return compile_regex(pattern)


def _domain_allowed(email: str, config: AuthorEmailConfig) -> bool:
    if "@" not in email:
        return False
    domain = email.rsplit("@", 1)[1].lower()
    return any(
        domain == allowed or (config.allow_subdomains and domain.endswith("." + allowed))
        for allowed in config.allowed_domains
    )


def _check_author_email(context: Context, config: AuthorEmailConfig) -> Iterator[Problem]:
    fix = (
        "Commit with an allowed email: `git config user.email you@example.com`, then rewrite "
        "the author of the branch's commits: `git rebase --exec 'git commit --amend --no-edit "
        f"--reset-author' {_rebase_base(context)}` and `git push --force-with-lease`."
    )
    for commit in context.commits:
        email = commit.author_email
        if email == _REDACTED:
            yield Problem(
                "the author email is hidden ([REDACTED] in the webhook payload, as GitLab "
                "does for users without a public email), so it cannot be checked",
                commit_location(commit),
                "GitLab shows only a public email in webhook payloads: set your commit "
                "email as the Public email of your GitLab profile, then push again.",
            )
            continue
        failures = []
        if config.pattern is not None and (
            _compiled(config.pattern).search(email[:MAX_TEXT_LENGTH]) is None
        ):
            failures.append(f"does not match `{config.pattern}`")
        if config.allowed_domains and not _domain_allowed(email, config):
            domains = ", ".join(config.allowed_domains)
            sub = " (or a subdomain)" if config.allow_subdomains else ""
            failures.append(f"is not at an allowed domain{sub}: {domains}")
        if failures:
            shown = email or "(empty)"
            yield Problem(
                f"author email {shown} " + " and ".join(failures), commit_location(commit), fix
            )


# ------------------------------------------------------------------------------------------
# commit.no_merge_commits
# ------------------------------------------------------------------------------------------


class NoMergeCommitsConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _check_no_merge_commits(context: Context, config: NoMergeCommitsConfig) -> Iterator[Problem]:
    target = context.target_branch or "<target branch>"
    fix = (
        f"Rebase the branch onto {target} instead of merging it in: `git fetch origin && "
        f"git rebase origin/{target}`, then `git push --force-with-lease`."
    )
    for commit in context.commits:
        if _is_merge(commit):
            yield Problem(
                f"a merge commit ({len(commit.parent_ids)} parents) in the merge request",
                commit_location(commit),
                fix,
            )


# ------------------------------------------------------------------------------------------
# commit.signed
# ------------------------------------------------------------------------------------------
#
# `context.signatures[sha]` is True when GitLab verified the commit's signature (GET
# /projects/:id/repository/commits/:sha/signature). Every commit is judged, merge commits
# and commits GitLab made included. Unlike the `reject_unsigned_commits` push rule, which
# exempts commits GitLab creates in the UI or API, nothing is exempt here: GitLab signs those
# itself with an instance key (GitLab.com publishes its key, noreply@gitlab.com, in
# https://docs.gitlab.com/user/project/repository/signed_commits/; self-managed: since 15.4
# behind a flag, on by default in 17.0 once a signing key is configured,
# https://docs.gitlab.com/user/project/repository/signed_commits/web_commits/) and the
# signature API reports them as `verified_system` (gitlab-org/gitlab
# app/models/concerns/enums/commit_signature.rb). They pass here only if the engine counts
# `verified_system` as verified; an instance without a signing key leaves them unsigned.


class SignedConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _check_signed(context: Context, config: SignedConfig) -> Iterator[Problem]:
    fix = (
        "Sign your commits with a GPG, SSH or X.509 key added to your GitLab profile "
        "(https://docs.gitlab.com/user/project/repository/signed_commits/): `git config "
        "commit.gpgsign true`, then re-sign the branch: `git rebase --exec 'git commit "
        f"--amend --no-edit -S' {_rebase_base(context)}` and `git push --force-with-lease`."
    )
    for commit in context.commits:
        if context.signatures.get(commit.sha) is not True:
            yield Problem(
                "the commit is not signed, or GitLab could not verify its signature",
                commit_location(commit),
                fix,
            )


# ------------------------------------------------------------------------------------------
# The catalog
# ------------------------------------------------------------------------------------------

RULES: tuple[Rule[Any], ...] = (
    _message_rule(
        "commit.conventional",
        "Conventional Commits (commitlint config-conventional)",
        ConventionalConfig,
        _check_conventional,
        fix="Write the first line as `type(scope): subject`.",
    ),
    _message_rule(
        "commit.subject_length",
        "Commit subject length",
        SubjectLengthConfig,
        _check_subject_length,
        fix="Shorten the first line; put the details in the body.",
    ),
    _message_rule(
        "commit.subject_trailing_period",
        "No full stop at the end of the commit subject",
        SubjectTrailingPeriodConfig,
        _check_subject_trailing_period,
        fix="Remove the final `.` from the first line.",
    ),
    _message_rule(
        "commit.body_blank_line",
        "Blank line between commit subject and body",
        BodyBlankLineConfig,
        _check_body_blank_line,
        fix="Insert an empty line after the first line.",
    ),
    _message_rule(
        "commit.body_line_length",
        "Commit body line length",
        BodyLineLengthConfig,
        _check_body_line_length,
        fix="Wrap the commit body.",
    ),
    _commit_rule(
        "commit.no_fixup",
        "No fixup!, squash!, amend! or WIP commits",
        NoFixupConfig,
        _check_no_fixup,
        fix="Squash them: `git rebase -i --autosquash`.",
    ),
    _commit_rule(
        "commit.dco",
        "Developer Certificate of Origin sign-off",
        DcoConfig,
        _check_dco,
        fix="Sign off the commits: `git rebase --signoff`.",
    ),
    _commit_rule(
        "commit.author_email",
        "Commit author email",
        AuthorEmailConfig,
        _check_author_email,
        fix="Commit with an allowed email (`git config user.email`).",
    ),
    _commit_rule(
        "commit.no_merge_commits",
        "No merge commits in the merge request",
        NoMergeCommitsConfig,
        _check_no_merge_commits,
        fix="Rebase instead of merging the target branch in.",
        scopes=MR_ONLY,
    ),
    _commit_rule(
        "commit.signed",
        "Signed commits",
        SignedConfig,
        _check_signed,
        Need.SIGNATURES,
        fix="Sign the commits (`git commit -S`).",
    ),
)
