from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from bot.model import ChangedFile
from bot.rules import merge_request as mr_rules
from bot.rules.base import Context, MergeRequestFacts, Problem, Scope
from bot.rules.merge_request import (
    ASSIGNEE,
    CHECKLIST,
    DESCRIPTION,
    DRAFT,
    LABELS,
    LINKED_ISSUE,
    REVIEWER,
    SIZE,
    SOURCE_BRANCH,
    TARGET_BRANCH,
    TITLE,
    AssigneeConfig,
    ChecklistConfig,
    DescriptionConfig,
    DraftConfig,
    LabelsConfig,
    LinkedIssueConfig,
    ReviewerConfig,
    SizeConfig,
    SourceBranchConfig,
    TargetBranchConfig,
    TitleConfig,
)


def context(
    *, changes: tuple[ChangedFile, ...] = (), target: str = "main", **fields: Any
) -> Context:
    facts = MergeRequestFacts(
        **{"title": "feat: add x", "source_branch": "feature", "target_branch": target, **fields}
    )
    return Context(
        scope=Scope.MERGE_REQUEST,
        branch=facts.source_branch,
        target_branch=facts.target_branch,
        merge_request=facts,
        changes=changes,
    )


def messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]


# --------------------------------------------------------------------------------------------
# The family as a whole
# --------------------------------------------------------------------------------------------

ENABLED: dict[str, Any] = {
    "merge_request.title": TitleConfig(severity="error", pattern="^X", conventional=True),
    "merge_request.draft": DraftConfig(),
    "merge_request.description": DescriptionConfig(min_length=100),
    "merge_request.checklist": ChecklistConfig(severity="error"),
    "merge_request.linked_issue": LinkedIssueConfig(severity="error", require_closing=True),
    "merge_request.labels": LabelsConfig(severity="error", all_of=["a"]),
    "merge_request.assignee": AssigneeConfig(severity="error"),
    "merge_request.reviewer": ReviewerConfig(severity="error"),
    "merge_request.target_branch": TargetBranchConfig(severity="error", allowed=["x"]),
    "merge_request.source_branch": SourceBranchConfig(severity="error", pattern="^x$"),
    "merge_request.size": SizeConfig(severity="error", max_files=1, max_lines=1),
    "merge_request.target_branch_protected": mr_rules.TargetBranchProtectedConfig(severity="error"),
}


def test_quiet_defaults_only_draft_and_description_are_on() -> None:
    on = {rule.id: rule.default_config().severity for rule in mr_rules.RULES}
    assert {k: v for k, v in on.items() if v != "off"} == {
        "merge_request.draft": "warning",
        "merge_request.description": "error",
    }
    assert set(on) == set(ENABLED)


@pytest.mark.parametrize("rule", mr_rules.RULES, ids=lambda r: r.id)
def test_every_rule_is_mr_only_and_silent_outside_a_merge_request(rule: Any) -> None:
    assert rule.scopes == {Scope.MERGE_REQUEST}
    push = Context(
        scope=Scope.PUSH,
        branch="x",
        target_branch="x",
        changes=(ChangedFile("a", "a", diff="+a\n+b\n"), ChangedFile("b", "b")),
    )
    assert rule.run(push, ENABLED[rule.id]) == []


@pytest.mark.parametrize("rule", mr_rules.RULES, ids=lambda r: r.id)
def test_every_option_is_documented_and_unknown_keys_are_refused(rule: Any) -> None:
    schema = rule.config.model_json_schema()
    assert all("description" in field for field in schema["properties"].values())
    with pytest.raises(ValidationError):
        rule.config(severity="error", no_such_option=1)


@pytest.mark.parametrize(
    ("config", "options"),
    [
        (TitleConfig, {}),
        (LabelsConfig, {}),
        (TargetBranchConfig, {}),
        (SourceBranchConfig, {}),
        (SizeConfig, {}),
        (LinkedIssueConfig, {"require_closing": True, "search_in": ["title", "branch"]}),
        (LinkedIssueConfig, {"search_in": []}),
        (TitleConfig, {"pattern": "(?=lookahead)"}),  # not RE2
        (SourceBranchConfig, {"pattern": "x" * 600}),  # longer than GitLab's 511
        (DescriptionConfig, {"min_length": 0}),
        (AssigneeConfig, {"min_count": 0}),
        (SizeConfig, {"max_lines": 0}),
    ],
)
def test_configs_that_could_never_fail_or_never_compile_are_refused(
    config: Any, options: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        config(severity="error", **options)


# --------------------------------------------------------------------------------------------
# merge_request.title
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "config", "expected"),
    [
        ("PROJ-12 Add export", TitleConfig(severity="error", pattern=r"^[A-Z]+-\d+"), 0),
        ("Add export (PROJ-12)", TitleConfig(severity="error", pattern=r"^[A-Z]+-\d+"), 1),
        ("Add export (PROJ-12)", TitleConfig(severity="error", pattern=r"[A-Z]+-\d+"), 0),
        ("feat(api): add export", TitleConfig(severity="error", conventional=True), 0),
        ("Add export", TitleConfig(severity="error", conventional=True), 2),  # subject+type empty
        ("feature: add export", TitleConfig(severity="error", conventional=True), 1),  # type-enum
        ("feat: " + "x" * 80, TitleConfig(severity="error", conventional=True), 1),  # too long
        (
            "feat: Add export",  # subject-case is an error in config-conventional
            TitleConfig(severity="error", conventional=True),
            1,
        ),
        (
            "Add export",
            TitleConfig(severity="error", pattern="^PROJ", conventional=True),
            3,
        ),
    ],
)
def test_title(title: str, config: TitleConfig, expected: int) -> None:
    problems = TITLE.run(context(title=title), config)
    assert len(problems) == expected, messages(problems)
    assert all(p.location == "title" for p in problems)


def test_title_pattern_finding_names_the_pattern() -> None:
    [problem] = TITLE.run(context(title="x"), TitleConfig(severity="error", pattern=r"^\w+-\d+"))
    assert problem.message == r"the title does not match the required pattern `^\w+-\d+`"


def test_title_conventional_finding_names_commitlint_rule() -> None:
    [problem] = TITLE.run(
        context(title="feature: add x"), TitleConfig(severity="error", conventional=True)
    )
    assert "(type-enum)" in problem.message
    assert "feat" in problem.fix


def test_catastrophic_backtracking_pattern_finishes_on_a_huge_title() -> None:
    # `(a+)+$` takes exponential time in a backtracking engine on "aaaa…!"; RE2 is linear.
    title = "a" * 100_000 + "!"
    start = time.monotonic()
    problems = TITLE.run(context(title=title), TitleConfig(severity="error", pattern="(a+)+$"))
    assert time.monotonic() - start < 5
    assert len(problems) == 1


# --------------------------------------------------------------------------------------------
# merge_request.draft
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "draft", "location"),
    [
        ("Draft: add x", False, "title"),
        ("draft: add x", False, "title"),
        ("DRAFT:add x", False, "title"),
        ("[Draft] add x", False, "title"),
        ("(Draft) add x", False, "title"),
        ("  Draft: add x", False, "title"),
        ("feat: add x", True, "merge request"),
    ],
)
def test_drafts_are_reported(title: str, draft: bool, location: str) -> None:
    [problem] = DRAFT.run(context(title=title, draft=draft), DraftConfig())
    assert problem.location == location
    assert "https://docs.gitlab.com/user/project/merge_requests/drafts/" in problem.fix


@pytest.mark.parametrize(
    "title",
    [
        "feat: drafting rules",
        "Redraft: x",
        "Draft",
        "Drafts: plan",
        "docs: Draft: x",
        "Draft - add x",  # older GitLab's prefix; current GitLab does not treat it as a draft
    ],
)
def test_titles_that_only_mention_drafts_pass(title: str) -> None:
    assert DRAFT.run(context(title=title), DraftConfig()) == []


def test_draft_prefix_is_named() -> None:
    [problem] = DRAFT.run(context(title="[DRAFT] x", draft=True), DraftConfig())
    assert problem.message == "the title starts with the draft marker `[DRAFT]`"


# --------------------------------------------------------------------------------------------
# merge_request.description
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "min_length", "expected"),
    [
        ("", 1, "the merge request has no description"),
        (" \n\t ", 1, "the merge request has no description"),
        ("Fixes #1", 1, None),
        ("  ok  ", 2, None),
        ("  ok  ", 3, "the description is 2 characters long; at least 3 expected"),
        ("x", 2, "the description is 1 character long; at least 2 expected"),
        ("## What\n\n## Why\n", 5, None),  # an unedited template counts: length only
        ("**ok**", 3, "the description is 2 characters long; at least 3 expected"),
        # Only what GitLab shows counts: an untouched template's comments are no description.
        (
            "<!-- What does this MR do? -->\n\n<!--\nWhy was it needed?\n-->\n",
            1,
            "the description shows no text: it holds only HTML comments or markup",
        ),
        (
            "<!-- Describe -->\n\nAdds x.",
            8,
            "the description is 7 characters long; at least 8 expected",
        ),
        ("Intro <!--", 10, None),  # an unclosed comment in a paragraph is shown as text
        ("```\ncode\n```", 4, None),  # code is shown
    ],
)
def test_description(description: str, min_length: int, expected: str | None) -> None:
    problems = DESCRIPTION.run(
        context(description=description), DescriptionConfig(min_length=min_length)
    )
    assert messages(problems) == ([expected] if expected else [])


# --------------------------------------------------------------------------------------------
# merge_request.checklist
# --------------------------------------------------------------------------------------------

CHECKLIST_ON = ChecklistConfig(severity="error")


@pytest.mark.parametrize(
    ("description", "open_tasks"),
    [
        ("- [ ] write tests", ["write tests"]),
        ("* [ ] write tests", ["write tests"]),
        ("+ [ ] write tests", ["write tests"]),
        ("1. [ ] write tests", ["write tests"]),
        ("12) [ ] write tests", ["write tests"]),
        ("  - [ ] nested", ["nested"]),
        ("> - [ ] quoted", ["quoted"]),
        ("-\t[\t] tabs", ["tabs"]),
        ("- [x] done\n- [X] done\n- [~] not applicable", []),
        ("- [ ] one\n- [x] two\n- [ ] three", ["one", "three"]),
        ("[ ] not a list item", []),
        ("- [ ]", []),  # GitLab renders no checkbox without text
        ("- [ ]    ", []),
        ("- [] no space", []),
        ("- [ ]no space after", []),
        ("-[ ] no space before", []),
        ("- [y] other mark", []),
        ("```\n- [ ] in a code block\n```\n- [ ] real", ["real"]),
        ("~~~md\n- [ ] tilde fence\n~~~", []),
        ("````\n```\n- [ ] still code\n````", []),  # a shorter fence does not close
        ("```\n- [ ] unclosed fence runs to the end", []),
        ("- list\n  ```\n  - [ ] code in a list item\n  ```", []),
        ("```inline``` - [ ] after inline code", []),  # not a list item either way
        ("```inline```\n- [ ] after inline code", ["after inline code"]),
        ("<!-- - [ ] in a comment -->", []),
        ("<!--\n- [ ] in a comment\n-->\n- [ ] after", ["after"]),
        ("- [ ] kept <!-- note -->", ["kept"]),
        # A line that starts an HTML comment starts an HTML block (CommonMark 4.6): the
        # rest of that line is raw HTML, not a list item.
        ("<!-- x --> - [ ] after a comment", []),
        ("- [ ] a\r\n- [ ] b\r\n", ["a", "b"]),
        # Issue 16: an unclosed `<!--` inside a paragraph is literal text, so it hides nothing.
        ("Intro <!--\n- [ ] task", ["task"]),
        ("Intro <!--\n\n- [ ] task\n\n-->", ["task"]),
        # An HTML comment block runs to its `-->`, across blank lines, or to the end.
        ("<!--\n\n- [ ] hidden\n\n-->\n- [ ] shown", ["shown"]),
        ("<!-- unclosed\n\n- [ ] hidden to the end", []),
        # Indented code blocks are code, not tasks.
        ("Intro\n\n    - [ ] indented code", []),
        ("    - [ ] indented code at the start", []),
        # Tasks in nested lists and blockquotes count, as GitLab renders a checkbox there.
        ("- item\n  - [ ] nested task", ["nested task"]),
        ("> - [ ] quoted\n>   - [ ] nested in a quote", ["quoted", "nested in a quote"]),
        ("> > 1. [ ] deep quote", ["deep quote"]),
        # An HTML block (`<details>`) holds raw HTML up to a blank line (CommonMark 4.6).
        ("<details>\n- [ ] raw html\n</details>", []),
        ("<details>\n\n- [ ] markdown inside\n\n</details>", ["markdown inside"]),
        # A fence needs 3 or fewer spaces of indentation; an item's markup is not hidden text.
        ("- [ ] **bold** `code` [link](http://x)", ["bold code link"]),
        ("- [ ] <!-- only a comment -->", [""]),
    ],
)
def test_checklist(description: str, open_tasks: list[str]) -> None:
    problems = CHECKLIST.run(context(description=description), CHECKLIST_ON)
    assert messages(problems) == [f"unchecked task: {t}" for t in open_tasks]


def test_checklist_names_line_and_cites_gitlab() -> None:
    [problem] = CHECKLIST.run(
        context(description="## Checks\n\n- [x] lint\n- [ ] update docs"), CHECKLIST_ON
    )
    assert problem.location == "description line 4"
    assert "`- [~]`" in problem.fix
    assert "https://docs.gitlab.com/user/markdown/#task-lists" in problem.fix


def test_checklist_bounds_each_item_and_the_number_of_findings() -> None:
    long_item = "- [ ] " + "word " * 100
    problems = CHECKLIST.run(context(description=long_item), CHECKLIST_ON)
    assert len(problems[0].message) <= len("unchecked task: ") + 80
    assert problems[0].message.endswith("…")

    many = "\n".join(f"- [ ] task {i}" for i in range(25))
    problems = CHECKLIST.run(context(description=many), CHECKLIST_ON)
    assert len(problems) == 21
    assert problems[-1].message == "5 more unchecked tasks"


# --------------------------------------------------------------------------------------------
# merge_request.linked_issue
# --------------------------------------------------------------------------------------------

MENTION = LinkedIssueConfig(severity="error")
CLOSING = LinkedIssueConfig(severity="error", require_closing=True)
JIRA = LinkedIssueConfig(severity="error", pattern=r"[A-Z][A-Z0-9]+-\d+")
JIRA_CLOSING = LinkedIssueConfig(
    severity="error", pattern=r"[A-Z][A-Z0-9]+-\d+", require_closing=True
)


@pytest.mark.parametrize(
    ("fields", "config"),
    [
        # GitLab references, mentioned anywhere searched
        ({"description": "Related to #12"}, MENTION),
        ({"description": "See group/project#12"}, MENTION),
        ({"description": "See group/sub.group/my-project#12"}, MENTION),
        ({"description": "See https://gitlab.example.com/g/p/-/issues/12"}, MENTION),
        ({"description": "See https://gitlab.example.com/g/p/issues/12"}, MENTION),
        ({"description": "See https://gitlab.example.com/groups/g/-/work_items/3"}, MENTION),
        ({"title": "fix: crash on empty page (#12)"}, MENTION),
        ({"source_branch": "123-fix-thing"}, MENTION),
        # GitLab's default closing pattern: every keyword form
        ({"description": "Closes #12"}, CLOSING),
        ({"description": "closes #12"}, CLOSING),
        ({"description": "Close #12"}, CLOSING),
        ({"description": "Closed #12"}, CLOSING),
        ({"description": "Closing #12"}, CLOSING),
        ({"description": "Fix #12"}, CLOSING),
        ({"description": "fixes #12"}, CLOSING),
        ({"description": "Fixed #12"}, CLOSING),
        ({"description": "Fixing #12"}, CLOSING),
        ({"description": "Resolve #12"}, CLOSING),
        ({"description": "resolves #12"}, CLOSING),
        ({"description": "Resolved #12"}, CLOSING),
        ({"description": "Resolving #12"}, CLOSING),
        ({"description": "Implement #12"}, CLOSING),
        ({"description": "Implements #12"}, CLOSING),
        ({"description": "implemented #12"}, CLOSING),
        ({"description": "Implementing #12"}, CLOSING),
        ({"description": "Closes: #12"}, CLOSING),
        ({"description": "Fixes  issue #12"}, CLOSING),
        ({"description": "Fixes issues #12, #13"}, CLOSING),
        ({"description": "Closes group/project#12"}, CLOSING),
        ({"description": "Closes https://gitlab.example.com/g/p/-/issues/12"}, CLOSING),
        ({"description": "Closes PROJ-12"}, CLOSING),  # GitLab's external-tracker branch
        ({"description": "Summary.\n\nThis fixes #18, #19"}, CLOSING),
        # an unclosed `<!--` in a paragraph is shown as text (CommonMark), so it hides nothing
        ({"description": "Intro <!--\nCloses #12"}, CLOSING),
        ({"description": "See **#12**"}, MENTION),
        ({"description": "- [x] Closes #12"}, CLOSING),
        ({"description": "> Closes #12"}, CLOSING),
        # a user pattern replaces GitLab's references
        ({"title": "PROJ-12 add export"}, JIRA),
        ({"description": "Tracked in PROJ-12"}, JIRA),
        ({"source_branch": "feature/PROJ-12-export"}, JIRA),
        ({"description": "Fixes PROJ-12"}, JIRA_CLOSING),
        ({"description": "Implements: PROJ-12"}, JIRA_CLOSING),
    ],
)
def test_linked_issue_passes(fields: dict[str, Any], config: LinkedIssueConfig) -> None:
    fields = {"title": "feat: add x", "description": "", "source_branch": "feature"} | fields
    assert LINKED_ISSUE.run(context(**fields), config) == []


@pytest.mark.parametrize(
    ("fields", "config", "message"),
    [
        ({"description": "No issue here."}, MENTION, "no issue reference"),
        ({"description": "#12abc is not a reference"}, MENTION, "no issue reference"),
        ({"description": "see /-/merge_requests/12"}, MENTION, "no issue reference"),
        ({"source_branch": "fix-123"}, MENTION, "no issue reference"),  # number not first
        ({"source_branch": "v2-fix"}, MENTION, "no issue reference"),
        ({"description": "PROJ-12"}, MENTION, "no issue reference"),  # Jira keys need `pattern`
        # references only in comments and code blocks do not count: templates put them there
        ({"description": "<!-- Closes #123 -->"}, MENTION, "no issue reference"),
        ({"description": "```\nCloses #123\n```"}, MENTION, "no issue reference"),
        ({"description": "Intro\n\n    Closes #123"}, MENTION, "no issue reference"),
        ({"description": "See `Closes #123`"}, MENTION, "no issue reference"),
        ({"description": "<!--\n\nCloses #123\n\n-->"}, MENTION, "no issue reference"),
        # GitLab reads its closing pattern in the Markdown source: markup between keyword
        # and reference breaks it (lib/gitlab/closing_issue_extractor.rb)
        ({"description": "Closes **#12**"}, CLOSING, "does not close it"),
        # only the searched places count
        (
            {"title": "fix #12"},
            LinkedIssueConfig(severity="error", search_in=["description"]),
            "no issue reference",
        ),
        (
            {"source_branch": "12-fix"},
            LinkedIssueConfig(severity="error", search_in=["title", "description"]),
            "no issue reference",
        ),
        # closing: a mention is not enough, nor a closing pattern outside the description
        ({"description": "Related to #12"}, CLOSING, "mentions an issue but does not close it"),
        ({"title": "Closes #12"}, CLOSING, "mentions an issue but does not close it"),
        ({"source_branch": "12-fix"}, CLOSING, "mentions an issue but does not close it"),
        ({"description": "Nothing"}, CLOSING, "the description has no closing issue reference"),
        ({"description": "Disclosed #12"}, CLOSING, "does not close it"),  # \b before keyword
        ({"description": "Prefixes #12"}, CLOSING, "does not close it"),
        ({"description": "Fixes\n#12"}, CLOSING, "does not close it"),  # spaces only
        ({"description": "closes the bug #12"}, CLOSING, "does not close it"),
        ({"description": "CLOSES #12"}, CLOSING, "does not close it"),  # [Cc], not any case
        # a user pattern replaces GitLab's references
        ({"description": "Closes #12"}, JIRA, "no issue reference matching"),
        ({"source_branch": "12-fix"}, JIRA, "no issue reference matching"),
        ({"description": "See PROJ-12"}, JIRA_CLOSING, "mentions an issue but does not close"),
        ({"description": "Fixes bug PROJ-12"}, JIRA_CLOSING, "does not close it"),
    ],
)
def test_linked_issue_fails(
    fields: dict[str, Any], config: LinkedIssueConfig, message: str
) -> None:
    fields = {"title": "feat: add x", "description": "", "source_branch": "feature"} | fields
    [problem] = LINKED_ISSUE.run(context(**fields), config)
    assert message in problem.message
    assert "https://docs.gitlab.com/user/project/issues/managing_issues/" in problem.fix


def test_linked_issue_finding_says_where_it_looked() -> None:
    [problem] = LINKED_ISSUE.run(context(description="x"), MENTION)
    assert problem.location == "title, description, source branch"
    assert "`123-`" in problem.message
    [problem] = LINKED_ISSUE.run(context(description="x"), JIRA)
    assert problem.message == (
        r"no issue reference matching `[A-Z][A-Z0-9]+-\d+` in the title, description, "
        "source branch"
    )


def test_linked_issue_user_pattern_after_a_keyword_with_non_ascii_text() -> None:
    # RE2 positions must be character positions for the match after the keyword.
    fields: dict[str, Any] = {"description": "Ünïcödé prose — fixes PROJ-7 ✓", "source_branch": "x"}
    assert LINKED_ISSUE.run(context(**fields), JIRA_CLOSING) == []


# --------------------------------------------------------------------------------------------
# merge_request.labels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "config", "expected"),
    [
        (("bug", "backend"), LabelsConfig(severity="error", all_of=["bug", "backend"]), []),
        (
            ("bug",),
            LabelsConfig(severity="error", all_of=["bug", "backend"]),
            ["the required label `backend` is missing"],
        ),
        (
            ("Bug",),
            LabelsConfig(severity="error", all_of=["bug"]),
            ["the required label `bug` is missing (`Bug` is set; label names are case-sensitive)"],
        ),
        (("type::bug",), LabelsConfig(severity="error", any_of=["type::bug", "type::feat"]), []),
        (
            ("backend",),
            LabelsConfig(severity="error", any_of=["type::bug", "type::feat"]),
            ["none of the labels `type::bug`, `type::feat` is set"],
        ),
        ((), LabelsConfig(severity="error", none_of=["do-not-merge"]), []),
        (
            ("do-not-merge", "bug"),
            LabelsConfig(severity="error", none_of=["do-not-merge"]),
            ["the label `do-not-merge` must not be set"],
        ),
        (("Do-Not-Merge",), LabelsConfig(severity="error", none_of=["do-not-merge"]), []),
        (
            ("wip",),
            LabelsConfig(severity="error", all_of=["bug"], any_of=["a", "b"], none_of=["wip"]),
            [
                "the required label `bug` is missing",
                "none of the labels `a`, `b` is set",
                "the label `wip` must not be set",
            ],
        ),
    ],
)
def test_labels(labels: tuple[str, ...], config: LabelsConfig, expected: list[str]) -> None:
    assert messages(LABELS.run(context(labels=labels), config)) == expected


# --------------------------------------------------------------------------------------------
# merge_request.assignee and merge_request.reviewer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("people", "min_count", "expected"),
    [
        (("alice",), 1, None),
        (("alice", "bob"), 2, None),
        ((), 1, "the merge request has no {role}"),
        (("alice",), 2, "the merge request has 1 {role}; at least 2 expected"),
        (("alice", "bob"), 3, "the merge request has 2 {role}s; at least 3 expected"),
    ],
)
def test_assignee_and_reviewer(
    people: tuple[str, ...], min_count: int, expected: str | None
) -> None:
    assigned = ASSIGNEE.run(
        context(assignees=people), AssigneeConfig(severity="error", min_count=min_count)
    )
    reviewed = REVIEWER.run(
        context(reviewers=people), ReviewerConfig(severity="error", min_count=min_count)
    )
    assert messages(assigned) == ([expected.format(role="assignee")] if expected else [])
    assert messages(reviewed) == ([expected.format(role="reviewer")] if expected else [])


def test_reviewers_do_not_count_as_assignees() -> None:
    problems = ASSIGNEE.run(context(reviewers=("bob",)), AssigneeConfig(severity="error"))
    assert messages(problems) == ["the merge request has no assignee"]


# --------------------------------------------------------------------------------------------
# merge_request.target_branch and merge_request.source_branch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "allowed", "passes"),
    [
        ("main", ["main"], True),
        ("release/1.2", ["main", "release/*"], True),
        ("release/1.2/hotfix", ["release/*"], True),  # fnmatch: `*` matches `/` too
        ("Main", ["main"], False),
        ("develop", ["main", "release/*"], False),
        ("mainline", ["main"], False),
    ],
)
def test_target_branch(target: str, allowed: list[str], passes: bool) -> None:
    problems = TARGET_BRANCH.run(
        context(target=target), TargetBranchConfig(severity="error", allowed=allowed)
    )
    assert (problems == []) is passes
    if not passes:
        assert problems[0].message.startswith(f"the merge request targets `{target}`")


@pytest.mark.parametrize(
    ("source", "pattern", "passes"),
    [
        ("feature/add-export", r"^(feature|fix)/[a-z0-9-]+$", True),
        ("fix/crash", r"^(feature|fix)/[a-z0-9-]+$", True),
        ("Feature/Add", r"^(feature|fix)/[a-z0-9-]+$", False),
        ("my-feature/add", r"^(feature|fix)/", False),
        ("my-feature/add", r"(feature|fix)/", True),  # searched, like GitLab's push rule
        ("JIRA-12-export", r"^JIRA-", True),
        ("main", r"^feature/", False),  # no default-branch exemption for MR sources
    ],
)
def test_source_branch(source: str, pattern: str, passes: bool) -> None:
    problems = SOURCE_BRANCH.run(
        context(source_branch=source), SourceBranchConfig(severity="error", pattern=pattern)
    )
    assert (problems == []) is passes
    if not passes:
        assert problems[0].message == f"the source branch `{source}` does not match `{pattern}`"


# --------------------------------------------------------------------------------------------
# merge_request.size
# --------------------------------------------------------------------------------------------


def changed(path: str, added: int = 0, removed: int = 0, *, complete: bool = True) -> ChangedFile:
    diff = f"@@ -1,{removed} +1,{added} @@\n" + "-old\n" * removed + "+new\n" * added
    return ChangedFile(path, path, diff=diff if complete else "", diff_complete=complete)


@pytest.mark.parametrize(
    ("changes", "config", "expected"),
    [
        ((changed("a", 5), changed("b", 5)), SizeConfig(severity="error", max_files=2), []),
        (
            (changed("a"), changed("b"), changed("c")),
            SizeConfig(severity="error", max_files=2),
            ["3 files changed; at most 2 expected"],
        ),
        ((changed("a", 3, 2),), SizeConfig(severity="error", max_lines=5), []),
        (
            (changed("a", 3, 3),),
            SizeConfig(severity="error", max_lines=5),
            ["6 lines changed (added + removed); at most 5 expected"],
        ),
        (
            (changed("a", 10), changed("big", complete=False)),
            SizeConfig(severity="error", max_lines=5),
            [
                "at least 10 lines changed (added + removed); at most 5 expected; GitLab did "
                "not return the diff of 1 file (big), so the real count is higher"
            ],
        ),
        (
            (changed("a", 2), changed("big", complete=False), changed("huge", complete=False)),
            SizeConfig(severity="error", max_lines=5),
            [
                "could not count the changed lines of 2 files: GitLab did not return the diff "
                "of 2 files (big, huge); the other diffs have 2 changed lines of at most 5"
            ],
        ),
        # an incomplete diff still counts as a file, and without max_lines it is no problem
        (
            (changed("a", 2), changed("big", complete=False)),
            SizeConfig(severity="error", max_files=1),
            ["2 files changed; at most 1 expected"],
        ),
        ((changed("big", complete=False),), SizeConfig(severity="error", max_files=1), []),
    ],
)
def test_size(changes: tuple[ChangedFile, ...], config: SizeConfig, expected: list[str]) -> None:
    assert messages(SIZE.run(context(changes=changes), config)) == expected


def test_size_lists_at_most_three_uncounted_files() -> None:
    changes = tuple(changed(f"f{i}", complete=False) for i in range(5))
    [problem] = SIZE.run(context(changes=changes), SizeConfig(severity="error", max_lines=5))
    assert "(f0, f1, f2, …)" in problem.message


def test_a_description_past_the_markdown_limit_is_reported_not_passed() -> None:
    from bot.rules.markdown import MAX_MARKDOWN_LENGTH

    filler = "Some words here.\n\n" * (MAX_MARKDOWN_LENGTH // 18 + 1)
    description = filler + "- [ ] a task past the limit\n\nCloses #12\n"
    [problem] = CHECKLIST.run(context(description=description), CHECKLIST_ON)
    assert "could not be read for tasks whole" in problem.message
    [problem] = LINKED_ISSUE.run(
        context(description=description), LinkedIssueConfig(severity="error", require_closing=True)
    )
    assert "the rest could not be judged" in problem.message
    # Enough text was read to know the description is not empty.
    assert DESCRIPTION.run(context(description=description), DescriptionConfig()) == []


@pytest.mark.parametrize(("protected", "failed"), [(True, False), (False, True), (None, False)])
def test_target_branch_protected_fails_only_when_gitlab_says_it_is_not(
    protected: bool | None, failed: bool
) -> None:
    rule = mr_rules.TARGET_BRANCH_PROTECTED
    facts = {} if protected is None else {"target_branch_protected": protected}
    context = Context(
        scope=Scope.MERGE_REQUEST, branch="feature", target_branch="develop", facts=facts
    )
    problems = rule.run(context, rule.default_config())
    assert [p.message for p in problems] == (
        ["the target branch `develop` is not protected"] if failed else []
    )
    assert rule.default_config().severity == "off"
