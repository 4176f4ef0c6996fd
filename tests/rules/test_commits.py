"""Tests for bot.rules.commits: every rule run directly on literal contexts and configs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.model import Commit, Severity
from bot.rules import conventional
from bot.rules.base import (
    MR_ONLY,
    Context,
    MergeRequestFacts,
    Need,
    Problem,
    Rule,
    RuleConfig,
    Scope,
    SquashPolicy,
    check_rule_ids,
)
from bot.rules.commits import (
    RULES,
    AuthorEmailConfig,
    BodyBlankLineConfig,
    BodyLineLengthConfig,
    ConventionalConfig,
    DcoConfig,
    NoFixupConfig,
    NoMergeCommitsConfig,
    SignedConfig,
    SubjectLengthConfig,
    SubjectTrailingPeriodConfig,
    _sign_off,
)

RULE = {rule.id: rule for rule in RULES}
SHA = "1234567890abcdef1234567890abcdef12345678"
PARENT = "a" * 40
OTHER_PARENT = "b" * 40


def commit(
    message: str,
    *,
    sha: str = SHA,
    name: str = "Ann Author",
    email: str = "ann@example.com",
    parents: tuple[str, ...] = (PARENT,),
) -> Commit:
    return Commit(sha, message, name, email, parents)


def mr(*commits: Commit, squash: bool = False, title: str = "feat: x") -> Context:
    return Context(
        scope=Scope.MERGE_REQUEST,
        branch="feature",
        target_branch="main",
        commits=commits,
        merge_request=MergeRequestFacts(title=title, squash=squash),
    )


def push(*commits: Commit) -> Context:
    return Context(scope=Scope.PUSH, branch="main", target_branch="main", commits=commits)


def run(rule_id: str, context: Context, **options: Any) -> list[Problem]:
    rule = RULE[rule_id]
    return rule.run(context, rule.config(**options))


def messages(rule_id: str, message: str, **options: Any) -> list[str]:
    return [p.message for p in run(rule_id, mr(commit(message)), **options)]


# ------------------------------------------------------------------------------------------
# The catalog
# ------------------------------------------------------------------------------------------


def test_rule_ids_are_unique_and_family_dot_name() -> None:
    check_rule_ids(RULES)
    assert len({r.id for r in RULES}) == len(RULES) == 10
    assert all(re.fullmatch(r"commit\.[a-z_]+", r.id) for r in RULES)


@pytest.mark.parametrize(
    ("rule_id", "severity"),
    [
        ("commit.conventional", "error"),
        ("commit.subject_length", "error"),
        ("commit.subject_trailing_period", "off"),
        ("commit.body_blank_line", "off"),
        ("commit.body_line_length", "off"),
        ("commit.no_fixup", "off"),
        ("commit.dco", "off"),
        ("commit.author_email", "off"),
        ("commit.no_merge_commits", "off"),
        ("commit.signed", "off"),
    ],
)
def test_quiet_defaults(rule_id: str, severity: str) -> None:
    assert RULE[rule_id].default_config().severity == severity


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_config_is_documented_and_strict(rule: Rule[Any]) -> None:
    assert issubclass(rule.config, RuleConfig)
    for name, field in rule.config.model_fields.items():
        assert field.description, f"{rule.id}.{name} has no description"
    assert "branches" in rule.config.model_fields
    with pytest.raises(ValidationError):
        rule.config.model_validate({"no_such_option": 1})
    assert Need.COMMITS in rule.needs
    assert rule.title and rule.fix


def test_needs_and_scopes() -> None:
    assert RULE["commit.signed"].needs == {Need.COMMITS, Need.SIGNATURES}
    assert RULE["commit.no_merge_commits"].scopes == MR_ONLY
    assert Scope.PUSH in RULE["commit.no_fixup"].scopes
    assert Scope.PUSH in RULE["commit.dco"].scopes


# ------------------------------------------------------------------------------------------
# The two default rules together give commitlint's verdict
# ------------------------------------------------------------------------------------------


def default_verdict(message: str) -> set[str]:
    """commitlint rule names, read from the "(rule-name)" the two default rules append."""
    context = mr(commit(message))
    problems = [
        *RULE["commit.conventional"].run(context, ConventionalConfig()),
        *RULE["commit.subject_length"].run(context, SubjectLengthConfig()),
    ]
    names = set()
    for problem in problems:
        # One finding per message and level; each part ends with the names it stands for.
        for part in problem.message.split("; "):
            match = re.search(r"\(([a-z-]+(?:, [a-z-]+)*)\)$", part)
            assert match, problem.message
            names.update(match.group(1).split(", "))
    return names


@pytest.mark.parametrize(
    ("message", "commitlint"),
    [
        # Verdicts of @commitlint/config-conventional, with header-max-length at 72.
        ("feat: add x", set()),
        ("fix(parser): handle y\n\nBecause z.\n\nRefs: #12", set()),
        ("feat(api)!: drop v1", set()),
        ("Added stuff", {"type-empty", "subject-empty"}),
        ("feat: Add x.", {"subject-case", "subject-full-stop"}),
        ("FEAT: add x", {"type-case", "type-enum"}),
        ("feature: add x", {"type-enum"}),
        ("fix: x\nbody", {"body-leading-blank"}),
        ("fix: x\n\nbody\nSigned-off-by: A <a@b.c>", {"footer-leading-blank"}),
        ("fix: x\n\n" + "b" * 101, {"body-max-line-length"}),
        ("fix: x\n\nsee https://example.com/" + "p" * 100, set()),
        ("feat: " + "a" * 66, set()),  # 72 characters
        ("feat: " + "a" * 67, {"header-max-length"}),  # 73
        ("feat: " + "\U0001f600" * 34, {"header-max-length"}),  # JS length 74
        # commitlint's default ignores
        ("Merge branch 'feature' into 'main'", set()),
        ('Revert "feat: add x"\n\nThis reverts commit abc.', set()),
        ("fixup! feat: add x", set()),
        ("v1.2.3", set()),
    ],
)
def test_defaults_give_commitlints_verdict(message: str, commitlint: set[str]) -> None:
    assert default_verdict(message) == commitlint
    assert {p.rule for p in conventional.lint(message)} == commitlint


# ------------------------------------------------------------------------------------------
# commit.conventional
# ------------------------------------------------------------------------------------------


def test_conventional_problem_wording_location_and_fix() -> None:
    (problem,) = run("commit.conventional", mr(commit("feature: add x")))
    assert problem.message.endswith("(type-enum)")
    assert problem.location == "commit 12345678: feature: add x"
    assert "`type(scope): subject`" in problem.fix
    assert "build, chore, ci, docs, feat, fix, perf, refactor, revert, style, test" in problem.fix
    assert "git rebase -i 12345678~" in problem.fix
    assert problem.severity is None  # the configured severity applies


@pytest.mark.parametrize(
    ("configured", "expected"),
    [("error", Severity.WARNING), ("warning", Severity.WARNING), ("info", Severity.INFO)],
)
def test_commitlint_warnings_stay_warnings(configured: str, expected: Severity) -> None:
    (problem,) = run("commit.conventional", mr(commit("fix: x\nbody")), severity=configured)
    assert problem.message == "body must have a leading blank line (line 2) (body-leading-blank)"
    assert problem.severity is expected


def test_header_length_is_not_conventionals_business() -> None:
    assert run("commit.conventional", mr(commit("feat: " + "a" * 200))) == []


@pytest.mark.parametrize(
    ("message", "options", "expected"),
    [
        ("wip: x", {"types": ["wip"]}, []),
        ("feat: x", {"types": ["wip"]}, ['type "feat" is not one of wip (type-enum)']),
        ("feat(api): x", {"scopes": ["api", "web"]}, []),
        ("feat(api/web): x", {"scopes": ["api", "web"]}, []),  # every segment allowed
        ("feat(api, web): x", {"scopes": ["api", "web"]}, []),
        ("feat: x", {"scopes": ["api"]}, []),  # scope-enum passes when there is no scope
        (
            "feat(API): x",
            {"scopes": ["api"]},
            ['scope "API" must be one of [api] (scope-enum)'],
        ),
        (
            "feat(api/db): x",
            {"scopes": ["api", "web"]},
            ['scope "api/db" must be one of [api, web] (scope-enum)'],
        ),
        ("feat(api): x", {"require_scope": True}, []),
        ("feat: x", {"require_scope": True}, ["scope may not be empty (scope-empty)"]),
        ("feat(): x", {"require_scope": True}, ["scope may not be empty (scope-empty)"]),
        ("feat!: x", {"allow_breaking": True}, []),
        ("feat!: x", {"allow_breaking": False}, ['the breaking-change marker "!" is not allowed']),
        ("feat: x\n\nBREAKING CHANGE: y", {"allow_breaking": False}, []),
        ("Merge branch 'a' into 'main'", {"default_ignores": True}, []),
    ],
)
def test_conventional_options(message: str, options: dict[str, Any], expected: list[str]) -> None:
    got = messages("commit.conventional", message, **options)
    assert [m.removesuffix(" here") for m in got] == expected


def test_conventional_without_default_ignores_judges_merges() -> None:
    got = messages("commit.conventional", "Merge branch 'a' into 'main'", default_ignores=False)
    assert got == ['the header is not "type(scope): subject" (type-empty, subject-empty)']


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # One cause, one finding: what commitlint reports as two or three sub-rules.
        ("Added stuff", ['the header is not "type(scope): subject" (type-empty, subject-empty)']),
        (
            "Added stuff.",
            [
                'the header is not "type(scope): subject" (type-empty, subject-empty); '
                'subject may not end with full stop "." (subject-full-stop)'
            ],
        ),
        (
            "FEAT: Add x.",
            [
                'subject "Add x." must not be sentence-case (start it with a lower-case letter) '
                '(subject-case); subject may not end with full stop "." '
                '(subject-full-stop); type "FEAT" must be lower-case (type-case); type "FEAT" is '
                "not one of build, chore, ci, docs, feat, fix, perf, refactor, revert, style, test "
                "(type-enum)"
            ],
        ),
    ],
)
def test_a_header_is_one_finding_whatever_it_breaks(message: str, expected: list[str]) -> None:
    assert messages("commit.conventional", message) == expected


def test_scope_options_do_not_judge_ignored_messages() -> None:
    assert messages("commit.conventional", "fixup! feat: x", require_scope=True) == []


def test_squashed_mr_judges_the_title() -> None:
    context = mr(commit("bad commit"), squash=True, title="Add a thing")
    problems = run("commit.conventional", context)
    assert {p.location for p in problems} == {"squash commit (MR title)"}
    assert all("merge request title" in p.fix for p in problems)
    assert run("commit.conventional", mr(commit("bad"), squash=True, title="feat: x")) == []


def test_squash_policy_commits_judges_each_commit() -> None:
    context = Context(
        scope=Scope.MERGE_REQUEST,
        branch="f",
        target_branch="main",
        commits=(commit("bad commit"),),
        merge_request=MergeRequestFacts(title="feat: x", squash=True),
        squash_policy=SquashPolicy.COMMITS,
    )
    assert {p.location for p in run("commit.conventional", context)} == {
        "commit 12345678: bad commit"
    }


def test_types_must_not_be_empty() -> None:
    with pytest.raises(ValidationError):
        ConventionalConfig(types=[])


# ------------------------------------------------------------------------------------------
# commit.subject_length
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "options", "failing"),
    [
        ("feat: " + "a" * 66, {}, False),
        ("feat: " + "a" * 67, {}, True),
        ("x" * 50, {"max_length": 50}, False),
        ("x" * 51, {"max_length": 50}, True),
        ("Not conventional at all but short", {}, False),  # only the length is judged
        ("feat: " + "\U0001f600" * 33, {}, False),  # JS length 72
        ("feat: " + "\U0001f600" * 34, {}, True),  # JS length 74
        ("feat: " + "a" * 66 + "\r\n\r\nbody", {}, False),  # CRLF: the \r is not counted
        ("\n\nfeat: x\n\n" + "b" * 90, {}, False),  # leading blank lines are dropped
        ("Merge branch '" + "b" * 80 + "' into 'main'", {}, False),
        ("Merge branch '" + "b" * 80 + "' into 'main'", {"default_ignores": False}, True),
    ],
)
def test_subject_length(message: str, options: dict[str, Any], failing: bool) -> None:
    assert bool(messages("commit.subject_length", message, **options)) is failing


def test_subject_length_message_and_fix() -> None:
    (problem,) = run("commit.subject_length", mr(commit("feat: " + "a" * 74)))
    assert problem.message == (
        "header must not be longer than 72 characters, current length is 80 (header-max-length)"
    )
    assert "Shorten the first line to 72 characters or fewer" in problem.fix
    assert "git rebase -i 12345678~" in problem.fix


def test_subject_length_reports_a_missing_header_as_commitlint_does() -> None:
    # The parser drops "gpg:" lines, so this message has no header at all.
    (problem,) = run("commit.subject_length", mr(commit("gpg: x\n\nbody")))
    assert problem.message == "header is missing (header-max-length)"
    assert "Write a first line" in problem.fix


# ------------------------------------------------------------------------------------------
# commit.subject_trailing_period
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "options", "failing"),
    [
        ("fix: handle x.", {}, True),
        ("Handle x.", {}, True),
        ("fix: handle x. ", {}, True),  # trailing whitespace does not hide it
        ("fix: handle x.\n\nBody.", {}, True),
        ("fix: handle x", {}, False),
        ("fix: handle x...", {}, False),  # an ellipsis is not a full stop
        ("fix: handle x\n\nBody ends with one.", {}, False),
        ("fixup! fix: handle x.", {}, False),
        ("fixup! fix: handle x.", {"default_ignores": False}, True),
    ],
)
def test_subject_trailing_period(message: str, options: dict[str, Any], failing: bool) -> None:
    got = messages("commit.subject_trailing_period", message, severity="error", **options)
    assert bool(got) is failing


# ------------------------------------------------------------------------------------------
# commit.body_blank_line
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "failing"),
    [
        ("subject\nbody", True),
        ("subject\r\nbody", True),
        ("subject\nSigned-off-by: A <a@b.c>", True),
        ("subject\n\nbody", False),
        ("subject\r\n\r\nbody", False),
        ("subject\n  \nbody", False),  # git: a whitespace-only line is blank
        ("subject", False),
        ("subject\n", False),
        ("\nsubject\n\nbody", False),
        ("Merge branch 'a' into 'main'\nbody", False),  # commitlint's default ignores
    ],
)
def test_body_blank_line(message: str, failing: bool) -> None:
    assert bool(messages("commit.body_blank_line", message)) is failing


# ------------------------------------------------------------------------------------------
# commit.body_line_length
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "options", "expected"),
    [
        ("fix: x\n\n" + "b" * 100, {}, []),
        ("fix: x\n\n" + "b" * 101, {}, ["line 3 of the message has 101 characters, more than 100"]),
        (
            "fix: x\n\nok\n" + "b" * 120 + "\n" + "c" * 130,
            {},
            ["line 4 of the message has 120 characters, more than 100 (1 more lines too)"],
        ),
        ("x" * 150 + "\n\nshort body", {}, []),  # the subject is another rule's
        ("fix: x\n\nSee https://example.com/" + "p" * 120, {}, []),
        ("fix: x\n\nLink: https://example.com/" + "p" * 120, {"ignore_urls": True}, []),
        (
            "fix: x\n\nhttps://example.com/" + "p" * 120,
            {"ignore_urls": False},
            ["line 3 of the message has 140 characters, more than 100"],
        ),
        (
            "fix: x\n\nxhttps://example.com/" + "p" * 120,  # commitlint's \b: not a URL
            {},
            ["line 3 of the message has 141 characters, more than 100"],
        ),
        (
            "fix: x\n\n" + "b" * 73,
            {"max_length": 72},
            ["line 3 of the message has 73 characters, more than 72"],
        ),
        ("fix: x\n\n" + "\U0001f600" * 50, {}, []),  # JS length 100
        (
            "fix: x\n\n" + "\U0001f600" * 51,
            {},
            ["line 3 of the message has 102 characters, more than 100"],
        ),
    ],
)
def test_body_line_length(message: str, options: dict[str, Any], expected: list[str]) -> None:
    assert messages("commit.body_line_length", message, **options) == expected


# ------------------------------------------------------------------------------------------
# commit.no_fixup
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("fixup! feat: add x", ['a "fixup!" commit: it is meant to be squashed before merging']),
        ("squash! feat: add x", ['a "squash!" commit: it is meant to be squashed before merging']),
        ("amend! feat: add x", ['a "amend!" commit: it is meant to be squashed before merging']),
        ("fixup!feat", ['a "fixup!" commit: it is meant to be squashed before merging']),
        ("WIP", ["a work-in-progress (WIP) commit"]),
        ("WIP: add x", ["a work-in-progress (WIP) commit"]),
        ("wip: add x", ["a work-in-progress (WIP) commit"]),
        ("wip add x", ["a work-in-progress (WIP) commit"]),
        ("[WIP] add x", ["a work-in-progress (WIP) commit"]),
        ("Wip - add x", ["a work-in-progress (WIP) commit"]),
        ("feat: add x", []),
        ("Wipe the cache", []),
        ("wiping", []),
        ("fix: handle fixup! subjects", []),
        ("feat: add x\n\nfixup! later", []),  # only the subject counts
        ('Revert "fixup! x"', []),
        ("Fixup! x", []),  # git's autosquash is case-sensitive
    ],
)
def test_no_fixup(message: str, expected: list[str]) -> None:
    assert messages("commit.no_fixup", message) == expected


def test_no_fixup_fixes() -> None:
    (problem,) = run("commit.no_fixup", mr(commit("fixup! feat: x")))
    assert "git rebase -i --autosquash origin/main" in problem.fix
    (problem,) = run("commit.no_fixup", push(commit("fixup! feat: x")))
    assert "git rebase -i --autosquash 12345678~" in problem.fix
    (problem,) = run("commit.no_fixup", mr(squash=True, title="WIP: x"))
    assert problem.location == "squash commit (MR title)"
    assert "merge request title" in problem.fix


def test_no_fixup_has_no_ignore_option() -> None:
    # commitlint's default ignores include fixup!: they must not apply to this rule.
    assert "default_ignores" not in NoFixupConfig.model_fields


# ------------------------------------------------------------------------------------------
# commit.dco (as dcoapp/app lib/dco.js judges)
# ------------------------------------------------------------------------------------------

ANN = "Signed-off-by: Ann Author <ann@example.com>"


@pytest.mark.parametrize(
    ("message", "options"),
    [
        (f"feat: x\n\n{ANN}", {}),
        ("feat: x\n\nsigned-off-by: ann author <ANN@Example.com>", {}),  # any case
        (f"feat: x\n\n{ANN}  ", {}),  # trailing whitespace
        (f"feat: x\n\n{ANN}\n\n", {}),
        (f"feat: x\r\n\r\n{ANN}\r\n", {}),  # GitLab UI commits use CRLF
        (f"feat: x\n\n{ANN}\nSigned-off-by: Bob <bob@example.org>", {}),
        (f"feat: x\n\nSigned-off-by: Bob <bob@example.org>\n{ANN}", {}),
        (f"feat: x\n\n{ANN}\nReviewed-by: Bob <bob@example.org>", {}),
        (f"{ANN}", {}),  # any line counts, even the first
        ("feat: x\n\nSigned-off-by: Bob <bob@example.org>", {"match_author": False}),
        ("feat: x\n\nSigned-off-by:Bob<b@x>", {"match_author": False}),  # GitLab's regex
    ],
)
def test_dco_passes(message: str, options: dict[str, Any]) -> None:
    assert messages("commit.dco", message, severity="error", **options) == []


MISSING = "the sign-off is missing: no `Signed-off-by: Name <email>` line"


@pytest.mark.parametrize(
    ("message", "options", "expected"),
    [
        ("feat: x", {}, MISSING),
        ("feat: x\n\nSigned-off-by: Ann Author<ann@example.com>", {}, MISSING),
        ("feat: x\n\nSigned-off-by:Ann Author <ann@example.com>", {}, MISSING),
        (f"feat: x\n\nsee {ANN}", {}, MISSING),  # not at the start of a line
        (f"feat: x\n\n{ANN} thanks", {}, MISSING),  # text after the email
        ("feat: x\n\nSigned-off-by: Ann Author", {}, MISSING),
        (
            "feat: x\n\nSigned-off-by: Bob <bob@example.org>",
            {},
            'expected a sign-off by "Ann Author <ann@example.com>", but got '
            '"Bob <bob@example.org>"',
        ),
        (
            "feat: x\n\nSigned-off-by: Ann Author <ann@example.org>",  # right name, wrong email
            {},
            'expected a sign-off by "Ann Author <ann@example.com>", but got '
            '"Ann Author <ann@example.org>"',
        ),
        (
            "feat: x\n\nSigned-off-by: Ann  Author <ann@example.com>",  # no trimming
            {},
            'expected a sign-off by "Ann Author <ann@example.com>", but got '
            '"Ann  Author <ann@example.com>"',
        ),
        (
            "feat: x\n\nSigned-off-by: Bob <bob@example.org>\nSigned-off-by: Cy <cy@example.org>",
            {},
            'cannot find a sign-off by "Ann Author <ann@example.com>" in '
            '["Bob <bob@example.org>", "Cy <cy@example.org>"]',
        ),
        ("feat: x\n\nsigned-off-by: Bob <bob@example.org>", {"match_author": False}, MISSING),
        ("feat: x\n\nSigned-off-by: Bob <bob>", {"match_author": False}, MISSING),
    ],
)
def test_dco_fails(message: str, options: dict[str, Any], expected: str) -> None:
    assert messages("commit.dco", message, severity="error", **options) == [expected]


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("ann@localhost", "the author email ann@localhost is not a valid email address"),
        ("", "the author email (empty) is not a valid email address"),
        (
            "[REDACTED]",
            "the author email [REDACTED] is not a valid email address (GitLab hides the "
            "email of users without a public email in webhook payloads)",
        ),
    ],
)
def test_dco_author_email_must_be_valid(email: str, expected: str) -> None:
    message = f"feat: x\n\nSigned-off-by: Ann Author <{email}>"
    context = mr(commit(message, email=email))
    assert [p.message for p in run("commit.dco", context)] == [expected]


@pytest.mark.parametrize(
    "email",
    ["ann@sub.example.com", "ann+alias@example.com", "a.b@example.co.uk", "o'neil@example.com"],
)
def test_dco_accepts_what_email_validator_accepts(email: str) -> None:
    context = mr(commit(f"feat: x\n\nSigned-off-by: Ann Author <{email}>", email=email))
    assert run("commit.dco", context) == []


def test_dco_exempts_merge_commits_and_listed_authors() -> None:
    merge = commit("Merge branch 'main' into feature", parents=(PARENT, OTHER_PARENT))
    bot = commit("chore: bump", email="Project_7_Bot_ab12@noreply.gitlab.example.com")
    human = commit("chore: bump", email="ann@example.com")
    context = mr(merge, bot, human)
    options = {"exempt_authors": ["project_*_bot_*@noreply.*"]}
    assert [p.message for p in run("commit.dco", context, **options)] == [MISSING]


def test_dco_committer_sign_off_does_not_count() -> None:
    # The DCO app also accepts the committer's sign-off; the bot's Commit has no committer.
    message = "feat: x\n\nSigned-off-by: Cy Committer <cy@example.org>"
    assert len(messages("commit.dco", message)) == 1


def test_dco_fix_is_concrete() -> None:
    (problem,) = run("commit.dco", mr(commit("feat: x")))
    assert "git commit --amend -s --no-edit" in problem.fix
    assert "git rebase --signoff origin/main" in problem.fix
    assert problem.location == "commit 12345678: feat: x"


def test_dco_judges_commits_even_when_squashing() -> None:
    context = mr(commit("feat: x"), squash=True, title="feat: x")
    assert [p.message for p in run("commit.dco", context)] == [MISSING]


# ------------------------------------------------------------------------------------------
# commit.author_email
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "options", "expected"),
    [
        ("ann@example.com", {"pattern": r"@example\.com$"}, []),
        ("ann@example.com.evil.org", {"pattern": r"@example\.com$"}, ["does not match"]),
        ("ann@EXAMPLE.com", {"pattern": r"@example\.com$"}, ["does not match"]),  # as GitLab
        ("ann@EXAMPLE.com", {"pattern": r"(?i)@example\.com$"}, []),
        ("ann@example.com", {"allowed_domains": ["example.com"]}, []),
        ("ann@Example.COM", {"allowed_domains": ["example.com"]}, []),
        ("ann@example.com", {"allowed_domains": ["@Example.com"]}, []),
        ("ann@dev.example.com", {"allowed_domains": ["example.com"]}, ["not at an allowed"]),
        (
            "ann@dev.example.com",
            {"allowed_domains": ["example.com"], "allow_subdomains": True},
            [],
        ),
        (
            "ann@badexample.com",
            {"allowed_domains": ["example.com"], "allow_subdomains": True},
            ["not at an allowed"],
        ),
        ("ann@other.org", {"allowed_domains": ["example.com", "other.org"]}, []),
        ("ann", {"allowed_domains": ["example.com"]}, ["not at an allowed"]),
        ("", {"pattern": "@"}, ["author email (empty) does not match"]),
        (
            "ann@other.org",
            {"pattern": "^ann@", "allowed_domains": ["example.com"]},
            ["not at an allowed"],
        ),
        (
            "bob@other.org",
            {"pattern": "^ann@", "allowed_domains": ["example.com"]},
            ["does not match `^ann@` and is not at an allowed domain: example.com"],
        ),
        ("[REDACTED]", {"pattern": "REDACTED"}, ["the author email is hidden ([REDACTED]"]),
    ],
)
def test_author_email(email: str, options: dict[str, Any], expected: list[str]) -> None:
    context = push(commit("feat: x", email=email))
    got = [p.message for p in run("commit.author_email", context, severity="error", **options)]
    assert len(got) == len(expected)
    for message, fragment in zip(got, expected, strict=True):
        assert fragment in message


def test_author_email_fix_names_the_git_commands() -> None:
    (problem,) = run(
        "commit.author_email",
        mr(commit("feat: x", email="ann@gmail.com")),
        severity="error",
        allowed_domains=["example.com"],
    )
    assert problem.message == "author email ann@gmail.com is not at an allowed domain: example.com"
    assert "git config user.email" in problem.fix
    assert "--reset-author' origin/main" in problem.fix


@pytest.mark.parametrize(
    "options",
    [
        {"severity": "error"},  # nothing to check
        {"pattern": "(unclosed"},  # not RE2
        {"pattern": "(?=lookahead)"},  # RE2 has no lookarounds
        {"allowed_domains": ["ann@example.com"]},
        {"allowed_domains": [""]},
    ],
)
def test_author_email_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuthorEmailConfig(**options)


# ------------------------------------------------------------------------------------------
# commit.no_merge_commits
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parents", "failing"),
    [((PARENT,), False), ((PARENT, OTHER_PARENT), True), ((PARENT, OTHER_PARENT, "c" * 40), True)],
)
def test_no_merge_commits(parents: tuple[str, ...], failing: bool) -> None:
    context = mr(commit("Merge branch 'main' into feature", parents=parents))
    problems = run("commit.no_merge_commits", context)
    assert bool(problems) is failing
    if failing:
        assert problems[0].message == (
            f"a merge commit ({len(parents)} parents) in the merge request"
        )
        assert "git rebase origin/main" in problems[0].fix


# ------------------------------------------------------------------------------------------
# commit.signed
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signatures", "failing"),
    [({SHA: True}, False), ({SHA: False}, True), ({}, True), ({"f" * 40: True}, True)],
)
def test_signed(signatures: dict[str, bool], failing: bool) -> None:
    context = Context(
        scope=Scope.PUSH,
        branch="main",
        target_branch="main",
        commits=(commit("feat: x"),),
        signatures=signatures,
    )
    problems = run("commit.signed", context)
    assert bool(problems) is failing
    if failing:
        assert problems[0].message == (
            "the commit is not signed, or GitLab could not verify its signature"
        )
        assert "git commit --amend --no-edit -S' 12345678~" in problems[0].fix


def test_signed_judges_merge_commits_too() -> None:
    merge = commit("Merge branch 'x' into 'main'", parents=(PARENT, OTHER_PARENT))
    assert len(run("commit.signed", mr(merge))) == 1


# ------------------------------------------------------------------------------------------
# Every config class can be built from its defaults and from YAML-like dicts
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        ConventionalConfig,
        SubjectLengthConfig,
        SubjectTrailingPeriodConfig,
        BodyBlankLineConfig,
        BodyLineLengthConfig,
        NoFixupConfig,
        DcoConfig,
        AuthorEmailConfig,
        NoMergeCommitsConfig,
        SignedConfig,
    ],
)
def test_configs_validate_their_defaults_and_schema(config: type[RuleConfig]) -> None:
    assert config.model_validate(config().model_dump()) == config()
    schema = config.model_json_schema()
    assert schema["additionalProperties"] is False
    assert all("description" in prop for prop in schema["properties"].values())


def test_branch_filter_is_inherited() -> None:
    config = DcoConfig(branches=["release/*"])
    assert config.applies_to_branch("release/1.0")
    assert not config.applies_to_branch("main")


# The DCO app's sign-off regex, in Python: the rule parses lines without it (a backtracking
# regex is quadratic on hostile lines) and must agree with it on every line.
_DCO_APP_REGEX = re.compile(
    rf"Signed-off-by: (.*) <(.*)>[{conventional.JS_WHITESPACE}]*", re.IGNORECASE | re.ASCII
)
_PIECES = ["Signed-off-by: ", "signed-OFF-by: ", "Signed-off-by:", "S", " ", " <", "<", ">"]
_PIECES += ["a", "@", "\t", "\u00a0", "\u017f", "\u212a"]


@given(st.lists(st.sampled_from(_PIECES), max_size=10).map("".join))
def test_sign_off_parsing_agrees_with_the_dco_apps_regex(line: str) -> None:
    match = _DCO_APP_REGEX.fullmatch(line)
    parsed = _sign_off(line)
    if match is None:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.name, parsed.email) == match.groups()


def test_sign_off_parsing_is_linear() -> None:
    hostile = "Signed-off-by: " + " <>" * 200_000 + "x"
    assert _sign_off(hostile) is None
    assert run("commit.dco", mr(commit("feat: x\n\n" + hostile)), match_author=False)
