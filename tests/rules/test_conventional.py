"""Tests for bot.rules.conventional.

Every expected verdict below is commitlint's own: the cases were run through
@commitlint/lint 21.2.4 with @commitlint/config-conventional 21.2.4's rules (header-max-length
overridden to 72) and conventional-changelog-conventionalcommits 10.4.1's parser options,
and matched this module rule-for-rule.  "commitlint:" comments call out the surprising ones.
"""

import pytest

from bot.rules.conventional import (
    DEFAULT_HEADER_MAX_LENGTH,
    DEFAULT_TYPES,
    Header,
    Problem,
    is_ignored,
    lint,
    parse_header,
)


def failing(message: str) -> set[str]:
    return {p.rule for p in lint(message)}


# ------------------------------------------------------------------------------------------
# Header rules
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # valid headers
        ("feat: add x", set()),
        ("fix(parser): handle y", set()),
        ("feat!: drop z", set()),
        ("feat(api)!: remove the v1 endpoints", set()),
        ("revert: feat: x", set()),  # "revert:" is a type; only "Revert "/"revert " is ignored
        ("fix: x:", set()),  # a colon in the subject is fine
        ("feat: add x...", set()),  # commitlint: "..." is not a full stop
        ("feat(): x", set()),  # commitlint: empty scope is stored as null, no rule cares
        # type-enum / type-case / type-empty
        ("feature: add x", {"type-enum"}),
        ("Feat: add x", {"type-case", "type-enum"}),
        ("FEAT: add x", {"type-case", "type-enum"}),
        ("1FEAT: x", {"type-enum"}),  # commitlint: digit-led lower-casing "is" lower-case
        ("add x", {"type-empty", "subject-empty"}),  # missing type: header does not parse
        (": add x", {"type-empty"}),  # headerPattern's (\w*) accepts an empty type
        ("feat : x", {"type-empty", "subject-empty"}),
        # subject-empty and the mandatory space after the colon
        ("feat: ", {"subject-empty", "header-trim"}),  # the trailing space is kept
        ("feat:", {"type-empty", "subject-empty"}),
        ("feat:add", {"type-empty", "subject-empty"}),  # commitlint: ": " is required
        ("feat!:x", {"type-empty", "subject-empty"}),
        # subject-full-stop: looks at the last character of the whole header
        ("feat: add x.", {"subject-full-stop"}),
        ("fix.", {"type-empty", "subject-empty", "subject-full-stop"}),
        # header-trim
        (" feat: x", {"header-trim", "type-empty", "subject-empty"}),
        ("feat: x ", {"header-trim"}),
        ("feat: x\t", {"header-trim"}),
    ],
)
def test_header_rules(message: str, expected: set[str]) -> None:
    assert failing(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("feat: Add x", {"subject-case"}),  # sentence-case
        ("feat: add X", set()),
        ("feat: add URL handling", set()),
        # commitlint: "URL handling" is sentence-case (upper-casing "U" changes nothing).
        ("feat: URL handling", {"subject-case"}),
        ("feat: Some Message", {"subject-case"}),  # sentence-case, start-case
        ("feat: SomeMessage", {"subject-case"}),  # sentence-case, pascal-case
        ("feat: SOMEMESSAGE", {"subject-case"}),  # sentence-case, start-case, upper-case
        ("feat: iOS support", set()),
        # commitlint only checks subjects that START with a cased letter.
        ("feat: `Foo` bar", set()),
        ("feat: 1 Add", set()),
        ("feat:  Add x", set()),  # the subject is " Add x": starts with a space
        # quoted spans are removed before judging the case: only "bar" is left.
        ("feat: add `Foo` bar", set()),
        ("feat: éa", set()),
        ("feat: Éa", {"subject-case"}),
        ("feat: я", set()),
        ("feat: Я", {"subject-case"}),
        ("feat: 中文", set()),  # no cased letter: not checked
    ],
)
def test_subject_case(message: str, expected: set[str]) -> None:
    assert failing(message) == expected


def test_subject_case_message_names_the_matched_cases() -> None:
    # Same matched-case lists as config-conventional's own index.test.ts.
    expected = {
        "fix(scope): Some message": "sentence-case",
        "fix(scope): Some Message": "sentence-case, start-case",
        "fix(scope): SomeMessage": "sentence-case, pascal-case",
        "fix(scope): SOMEMESSAGE": "sentence-case, start-case, upper-case",
    }
    for message, cases in expected.items():
        (problem,) = lint(message)
        assert problem.rule == "subject-case"
        assert problem.message.startswith(f'subject "{message.split(": ", 1)[1]}" must not be ')
        assert f"must not be {cases} (" in problem.message


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("feat: " + "a" * 66, set()),  # 72 characters
        ("feat: " + "a" * 67, {"header-max-length"}),  # 73 characters
        # JS String.length counts UTF-16 code units: each emoji is 2.
        ("feat: " + "\U0001f600" * 33, set()),  # 6 + 66 = 72
        ("feat: " + "\U0001f600" * 34, {"header-max-length"}),  # 6 + 68 = 74
    ],
)
def test_header_max_length(message: str, expected: set[str]) -> None:
    assert failing(message) == expected


def test_header_max_length_is_configurable() -> None:
    header = "feat: " + "a" * 90  # 96 characters: fine for commitlint's own 100
    assert failing(header) == {"header-max-length"}
    assert lint(header, header_max_length=100) == []
    (problem,) = lint("feat: " + "a" * 67)
    assert problem == Problem(
        "header-max-length",
        "error",
        "header must not be longer than 72 characters, current length is 73",
    )


def test_custom_types() -> None:
    assert failing("wip: x") == {"type-enum"}
    assert lint("wip: x", types=("wip",)) == []
    (problem,) = lint("feature: x")
    assert problem.message == (
        'type "feature" is not one of build, chore, ci, docs, feat, fix, perf, refactor, '
        "revert, style, test"
    )


# ------------------------------------------------------------------------------------------
# Body and footer rules
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("feat: x\n\nbody", set()),
        ("feat: x\nbody", {"body-leading-blank"}),
        ("feat: x\n\n" + "b" * 100, set()),
        ("feat: x\n\n" + "b" * 101, {"body-max-line-length"}),
        ("feat: x\n\nfirst\n" + "b" * 101, {"body-max-line-length"}),
        # commitlint exempts any line containing a URL from the max-line-length rules.
        ("feat: x\n\nsee https://example.com/" + "a" * 120, set()),
        # The footer starts at the first "Token: value" / "Token #ref" / BREAKING CHANGE line.
        ("feat: x\n\nbody\n\nCloses #1", set()),
        ("feat: x\n\nbody\nCloses #1", {"footer-leading-blank"}),
        ("feat: x\nCloses #1", {"footer-leading-blank"}),
        ("feat: x\n\nBREAKING CHANGE: drops y", set()),
        ("feat: x\n\nbody\nBREAKING CHANGE: drops y", {"footer-leading-blank"}),
        ("feat: x\n\nSigned-off-by: A <a@example.com>", set()),
        # Everything after the first footer line is footer, so the long line is a footer line.
        ("feat: x\n\nbody\n\nRefs #2\n" + "f" * 101, {"footer-max-line-length"}),
        # commitlint: "Note: ..." is a footer token too, so the footer starts there.
        ("feat: x\n\nNote: this\n" + "n" * 101, {"footer-max-line-length"}),
        # Both kinds at once: errors and warnings together.
        (
            "Feat: x\nbody\n" + "b" * 101,
            {"type-case", "type-enum", "body-leading-blank", "body-max-line-length"},
        ),
        # Trailing blank lines are not a body.
        ("feat: x\n\n\n", set()),
    ],
)
def test_body_and_footer_rules(message: str, expected: set[str]) -> None:
    assert failing(message) == expected


def test_max_line_length_messages_name_the_part_and_its_line() -> None:
    body_and_footer = "feat: x\n\nfirst\n" + "b" * 101 + "\n\nRefs: " + "\U0001f600" * 51
    assert [p.message for p in lint(body_and_footer)] == [
        "body's lines must not be longer than 100 characters (body line 2 has 101)",
        "footer's lines must not be longer than 100 characters (footer line 1 has 108)",
    ]


def test_levels_and_order() -> None:
    problems = lint("Feat: Add x.\nbody\n" + "b" * 101)
    assert [(p.rule, p.level) for p in problems] == [
        # errors first, in config-conventional's rule order ...
        ("body-max-line-length", "error"),
        ("subject-case", "error"),
        ("subject-full-stop", "error"),
        ("type-case", "error"),
        ("type-enum", "error"),
        # ... then warnings.
        ("body-leading-blank", "warning"),
    ]
    assert all(p.message for p in problems)


# ------------------------------------------------------------------------------------------
# CRLF (GitLab web UI commits)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("feat: add x\r\n", set()),
        ("feat: add x\r\n\r\nbody line\r\n\r\nRefs #2\r\n", set()),
        ("feat: add x\r\nbody", {"body-leading-blank"}),
        (
            "Feat: X\r\n\r\n" + "b" * 101,
            {"type-case", "type-enum", "subject-case", "body-max-line-length"},
        ),
        ("feat: " + "a" * 66 + "\r\n\r\nbody", set()),  # the \r is not part of the header
        ("Merge branch 'x' into 'y'\r\n\r\nSee merge request g/p!1\r\n", set()),
    ],
)
def test_crlf(message: str, expected: set[str]) -> None:
    assert failing(message) == expected


# ------------------------------------------------------------------------------------------
# Default ignores
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Merge branch 'x' into 'y'",
        "Merge branch 'feature' into 'main'\n\nSee merge request group/project!12",
        "Merge branch 'iss53'",
        "Merge pull request #369 from a/b",
        "Merge tag 'v1.1.1'",
        "Merge remote-tracking branch 'origin/main'",
        "Merged in feature/x (pull request #8)",
        "Merged PR 123: Description here",
        "Automatic merge from release",
        "Auto-merged develop into master",
        'Revert "feat: x"\n\nThis reverts commit 1e69d542c16c2a32acfd139e32efa07a45f19111.',
        'revert "feat: x"',
        'Reapply "feat: x"',
        "fixup! feat: x",
        "squash! feat: x",
        "amend! feat: x",
        "1.2.3",
        "v1.2.3",
        "0.0.1-some-crazy-tag.999",
        "chore(release): 1.2.3",
        "chore: 2.3.3-beta.1 [skip ci]",
        "2.3.3-beta.1 (ci-skip)",
        "1.0.0\n\nSigned-off-by: Developer <example@example.com>",
        # commitlint: the merge wildcards are /m regexes, so a merge line ANYWHERE in the
        # message (e.g. a squash commit's body) ignores the whole message.
        "Feat: Add x\n\nMerge branch 'feature' into 'main'",
        # commitlint: "Merged (.*?)(in|into) " matches "in " at the end of any word.
        "Merged domain objects",
    ],
)
def test_ignored(message: str) -> None:
    assert is_ignored(message)
    assert lint(message) == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("foo bar Merge branch xxx", {"type-empty", "subject-empty"}),
        ("Revert", {"type-empty", "subject-empty"}),  # needs "Revert " with a space
        ("1.2", {"type-empty", "subject-empty"}),  # not a full semver
        ("01.2.3", {"type-empty", "subject-empty"}),  # leading zero: semver.valid() -> null
        ("9007199254740992.0.0", {"type-empty", "subject-empty"}),  # > MAX_SAFE_INTEGER
        ("fixup feat: x", {"type-empty", "subject-empty"}),
        ("Fixup! feat: x", {"type-empty", "subject-empty"}),  # case-sensitive
        ("chore(deps): bump x from 1.2.3 to 1.2.4", set()),  # linted normally, and valid
    ],
)
def test_not_ignored(message: str, expected: set[str]) -> None:
    assert not is_ignored(message)
    assert failing(message) == expected


@pytest.mark.parametrize("message", ["", "   ", "\n\n", "gpg: Signature made"])
def test_nothing_to_lint(message: str) -> None:
    # commitlint: "" and messages the parser reduces to nothing (gpg: lines are dropped)
    # are skipped as empty; whitespace-only input makes its parser throw.
    assert lint(message) == []


# ------------------------------------------------------------------------------------------
# parse_header
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("feat: add x", Header("feat", None, False, "add x")),
        ("fix(parser): handle y", Header("fix", "parser", False, "handle y")),
        ("feat!: drop z", Header("feat", None, True, "drop z")),
        ("feat(api)!: remove v1", Header("feat", "api", True, "remove v1")),
        ("feat(): x", Header("feat", None, False, "x")),
        (": x", Header("", None, False, "x")),
        ("feat: ", Header("feat", None, False, "")),
        # breakingHeaderPattern is tried first, which changes the greedy scope split.
        ("feat(a)!: b (c): d", Header("feat", "a", True, "b (c): d")),
        ("feat(a): b (c)!: d", Header("feat", "a): b (c", True, "d")),
        ("feat:add", None),
        ("add x", None),
        ("feat (x): y", None),
        ("feat: x\ny", None),
    ],
)
def test_parse_header(header: str, expected: Header | None) -> None:
    assert parse_header(header) == expected


def test_constants() -> None:
    assert DEFAULT_HEADER_MAX_LENGTH == 72
    assert DEFAULT_TYPES == (
        "build",
        "chore",
        "ci",
        "docs",
        "feat",
        "fix",
        "perf",
        "refactor",
        "revert",
        "style",
        "test",
    )
