from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.model import ChangedFile, Severity
from bot.rules import repository
from bot.rules.base import CodeOwnersFile, Context, Need, ProjectFacts, Scope
from bot.rules.repository import (
    CODEOWNERS,
    DESCRIPTION,
    ISSUE_TEMPLATES,
    MERGE_REQUEST_TEMPLATES,
    REQUIRED_FILES,
    TOPICS,
    CodeOwnersConfig,
    IssueTemplatesConfig,
    MergeRequestTemplatesConfig,
    ProjectDescriptionConfig,
    RequiredFilesConfig,
    RequiredFileSpec,
    TopicsConfig,
)

COMPLETE = frozenset(
    {
        "README.md",
        "LICENSE",
        "CONTRIBUTING.md",
        "CHANGELOG.md",
        ".gitlab/issue_templates/Bug.md",
        ".gitlab/merge_request_templates/Default.md",
    }
)


def context(
    paths: frozenset[str] | set[str] = COMPLETE,
    *,
    scope: Scope = Scope.PUSH,
    description: str = "A tool",
    topics: tuple[str, ...] = ("python",),
    codeowners: CodeOwnersFile | None = None,
) -> Context:
    return Context(
        scope=scope,
        branch="main",
        target_branch="main",
        paths=frozenset(paths),
        project=ProjectFacts(description=description, topics=topics),
        codeowners=codeowners,
    )


# --------------------------------------------------------------------------------------------
# The family as a whole
# --------------------------------------------------------------------------------------------


def test_quiet_defaults() -> None:
    defaults = {rule.id: rule.default_config().severity for rule in repository.RULES}
    assert defaults == {
        "repository.required_files": "error",
        "repository.issue_templates": "warning",
        "repository.merge_request_templates": "warning",
        "repository.description": "warning",
        "repository.topics": "warning",
        "repository.codeowners": "off",
    }


def test_needs_and_scopes() -> None:
    needs = {rule.id: rule.needs for rule in repository.RULES}
    assert needs["repository.required_files"] == {Need.TREE}
    assert needs["repository.description"] == {Need.PROJECT}
    assert needs["repository.topics"] == {Need.PROJECT}
    assert needs["repository.codeowners"] == {Need.TREE, Need.CODEOWNERS}
    assert all(rule.scopes == {Scope.MERGE_REQUEST, Scope.PUSH} for rule in repository.RULES)


@pytest.mark.parametrize("rule", repository.RULES, ids=lambda r: r.id)
def test_every_option_is_documented_and_unknown_keys_are_refused(rule: Any) -> None:
    schema = rule.config.model_json_schema()
    assert all("description" in field for field in schema["properties"].values())
    for definition in schema.get("$defs", {}).values():
        assert all("description" in field for field in definition["properties"].values())
    with pytest.raises(ValidationError):
        rule.config(severity="error", no_such_option=1)


@pytest.mark.parametrize("scope", [Scope.PUSH, Scope.MERGE_REQUEST])
def test_complete_repository_passes_every_default_rule(scope: Scope) -> None:
    owners = CodeOwnersFile("CODEOWNERS", "* @lead\n")
    ctx = context(COMPLETE | {"CODEOWNERS"}, scope=scope, codeowners=owners)
    for rule in repository.RULES:
        assert rule.run(ctx, rule.config(severity="error")) == [], rule.id


# --------------------------------------------------------------------------------------------
# repository.required_files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "paths",
    [
        {"readme", "licence.txt", "Contributing.rst", "CHANGES"},
        {"README.rst", "COPYING", "CONTRIBUTING", "HISTORY.md"},
        {"Readme.markdown", "LICENSE-MIT", "contributing.adoc", "NEWS"},
        {"README.md", "UNLICENSE", "CONTRIBUTING.md", "RELEASES.md"},
        {"README", "LICENSE-APACHE.txt", "CONTRIBUTING.md", "changelog.txt"},
        {"README", "COPYING.LESSER", "CONTRIBUTING.md", "CHANGELOG"},
    ],
)
def test_usual_name_variants_are_accepted(paths: set[str]) -> None:
    assert REQUIRED_FILES.run(context(paths), RequiredFilesConfig()) == []


def test_missing_files_are_named_with_their_severity() -> None:
    problems = REQUIRED_FILES.run(
        context({"README.md", "docs/LICENSE", "readme_assets/logo.png"}), RequiredFilesConfig()
    )
    # A LICENSE below the root does not count: GitLab links only the root one.
    assert {p.location: p.severity for p in problems} == {
        "LICENSE": Severity.ERROR,
        "CONTRIBUTING": Severity.WARNING,
        "CHANGELOG": Severity.WARNING,
    }
    license_problem = problems[0]
    assert license_problem.message == "LICENSE is missing"
    assert license_problem.fix.startswith(
        "Add a LICENSE file at the repository root (`LICENSE`, `LICENSE.*`, `LICENSE-*`, "
        "`LICENCE`, …); it says under which terms"
    )


@pytest.mark.parametrize(
    ("paths", "missing"),
    [
        ({"readme_assets/logo.png"}, "README"),  # a lookalike directory
        ({".gitlab/README.md"}, "README"),
        ({"READ.ME"}, "README"),
        ({"README-dev.md"}, "README"),  # only LICENSE takes a `-` suffix
        ({"LICENSES"}, "LICENSE"),
        ({"MYLICENSE"}, "LICENSE"),
        ({"CHANGELOG-old"}, "CHANGELOG"),
    ],
)
def test_names_that_do_not_count(paths: set[str], missing: str) -> None:
    problems = REQUIRED_FILES.run(context(paths), RequiredFilesConfig())
    assert missing in {p.location for p in problems}


def test_custom_file_list_replaces_the_defaults() -> None:
    config = RequiredFilesConfig.model_validate(
        {
            "files": [
                {"name": "SECURITY", "accept": ["SECURITY.md"]},
                {"name": "Licence", "accept": ["LICENSE*", "!LICENSE.old"], "severity": "info"},
            ]
        }
    )
    problems = REQUIRED_FILES.run(context({"README.md", "LICENSE.old"}), config)
    assert [(p.message, p.severity) for p in problems] == [
        ("SECURITY is missing", None),  # no severity of its own: the rule's applies
        ("Licence is missing", Severity.INFO),  # LICENSE.old is excluded
    ]
    assert problems[0].fix == "Add a SECURITY file at the repository root (`SECURITY.md`)."
    assert REQUIRED_FILES.run(context({"security.MD", "License.txt"}), config) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "X", "accept": []},
        {"name": "", "accept": ["X"]},
        {"name": "X", "accept": ["docs/X"]},  # only the root is looked at
        {"name": "X", "accept": ["!X"]},
        {"name": "X", "accept": ["# comment"]},
        {"name": "X", "accept": ["  "]},
        {"name": "X", "accept": ["X\\"]},  # not a gitignore pattern
        {"name": "X", "accept": ["X"], "severity": "off"},
        {"name": "X", "accept": ["X"], "extra": 1},
    ],
)
def test_invalid_file_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RequiredFilesConfig.model_validate({"files": [spec]})


def test_leading_slash_anchors_to_the_root_as_in_gitignore() -> None:
    spec = RequiredFileSpec(name="README", accept=["/README*"])
    assert REQUIRED_FILES.run(context({"README.md"}), RequiredFilesConfig(files=[spec])) == []


def test_apply_changes_adds_deletes_and_renames() -> None:
    before = frozenset({"README.md", "LICENSE", "old.txt"})
    after = repository.apply_changes(
        before,
        [
            ChangedFile("LICENSE", "LICENSE", deleted_file=True),
            ChangedFile("CHANGELOG.md", "CHANGELOG.md", new_file=True),
            ChangedFile("old.txt", "new.txt", renamed_file=True),
            ChangedFile("README.md", "README.md"),
        ],
    )
    assert after == {"README.md", "CHANGELOG.md", "new.txt"}


def test_an_mr_that_deletes_the_license_fails() -> None:
    paths = repository.apply_changes(
        COMPLETE, [ChangedFile("LICENSE", "LICENSE", deleted_file=True)]
    )
    problems = REQUIRED_FILES.run(context(paths), RequiredFilesConfig())
    assert [p.location for p in problems] == ["LICENSE"]


# --------------------------------------------------------------------------------------------
# repository.issue_templates and repository.merge_request_templates
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paths", "issue_ok", "mr_ok"),
    [
        (COMPLETE, True, True),
        ({".gitlab/issue_templates/Bug.MD"}, True, False),
        ({".gitlab/merge_request_templates/Default.md"}, False, True),
        ({".gitlab/issue_templates/old.txt"}, False, False),
        ({".gitlab/merge_request_templates/x/y.md"}, False, False),  # not directly inside
        ({".gitlab/issue_templates.md", ".gitlab/Bug.md"}, False, False),
        ({"issue_templates/Bug.md"}, False, False),
        (set(), False, False),
    ],
)
def test_templates(paths: set[str], issue_ok: bool, mr_ok: bool) -> None:
    issue = ISSUE_TEMPLATES.run(context(paths), IssueTemplatesConfig())
    mr = MERGE_REQUEST_TEMPLATES.run(context(paths), MergeRequestTemplatesConfig())
    assert (issue == []) is issue_ok
    assert (mr == []) is mr_ok


def test_template_findings_say_where_and_cite_gitlab() -> None:
    [issue] = ISSUE_TEMPLATES.run(context(set()), IssueTemplatesConfig())
    [mr] = MERGE_REQUEST_TEMPLATES.run(context(set()), MergeRequestTemplatesConfig())
    assert issue.message == "no issue template in .gitlab/issue_templates/"
    assert mr.message == "no merge request template in .gitlab/merge_request_templates/"
    assert "https://docs.gitlab.com/user/project/description_templates/" in mr.fix


# --------------------------------------------------------------------------------------------
# repository.description and repository.topics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "passes"), [("A tool", True), ("  \n", False), ("", False)]
)
def test_description(description: str, passes: bool) -> None:
    problems = DESCRIPTION.run(context(description=description), ProjectDescriptionConfig())
    assert (problems == []) is passes
    if not passes:
        assert problems[0].message == "the project has no description"
        assert "Settings > General" in problems[0].fix


@pytest.mark.parametrize(
    ("topics", "minimum", "expected"),
    [
        (("python",), 1, None),
        (("python", "gitlab"), 2, None),
        ((), 1, "the project has 0 topics; at least 1 expected"),
        (("python",), 2, "the project has 1 topic; at least 2 expected"),
        (("python", " "), 2, "the project has 1 topic; at least 2 expected"),
    ],
)
def test_topics(topics: tuple[str, ...], minimum: int, expected: str | None) -> None:
    problems = TOPICS.run(context(topics=topics), TopicsConfig(minimum=minimum))
    assert [p.message for p in problems] == ([expected] if expected else [])


def test_topics_minimum_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        TopicsConfig(minimum=0)


# --------------------------------------------------------------------------------------------
# repository.codeowners
# --------------------------------------------------------------------------------------------

CODEOWNERS_ON = CodeOwnersConfig(severity="error")


def owners_problems(text: str, path: str = "CODEOWNERS") -> list[tuple[str, str]]:
    ctx = context(COMPLETE | {path}, codeowners=CodeOwnersFile(path, text))
    return [(p.location, p.message) for p in CODEOWNERS.run(ctx, CODEOWNERS_ON)]


@pytest.mark.parametrize(
    "text",
    [
        "* @default-owner",
        "README.md @doc-team @tech-lead\n*.rb @ruby-owner",
        "LICENSE @legal janedoe@gitlab.com",
        "README @group @group/with-nested/subgroup",
        "/docs/ @all-docs\n/docs/* @root-docs\n/docs/**/*.md @root-docs",
        "/config/ @@maintainer\nfile.md @@developer @@Maintainers @@owner",
        "# a comment\n\n   # an indented comment\n* @a\n",
        "\\#file_with_pound.rb @owner",
        "path\\ with\\ spaces/ @owner",
        "[Documentation]\nee/docs @docs\ndocs @docs",
        "^[Go]\n*.go @root",
        "[Section name][5]\n*.rb @a",
        "[Section][2] @group @group/subgroup\ndocs/\nREADME.md @other",
        "[Documentation] @docs-team\ndocs/\nREADME.md",
        "[Docs] jane@example.com\ndocs/",
        "* @username\n!pom.xml\n[Ruby]\n*.rb @ruby-team\n!/config/**/*.rb",
        "^[Optional][0]\n* @a",
        "* @a\r\n*.md @b\r\n",
        "[Sections are case-insensitive]\n* @a\n[SECTIONS ARE CASE-INSENSITIVE]\n*.md @b",
    ],
)
def test_valid_codeowners(text: str) -> None:
    assert owners_problems(text) == []


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("README.md", 1, "`README.md` has no owners, and its section has no default owners"),
        ("* @a\n\n[Docs]\ndocs/", 4, "`docs/` has no owners"),
        ("[Docs] @docs\n[Other]\nother/", 3, "`other/` has no owners"),  # defaults per header
        ("* alice", 1, "`alice` is not a valid owner: use `@user`"),
        ("* @alice bob", 1, "`bob` is not a valid owner"),
        ("* @alice,", 1, "`@alice,` is not a valid owner"),
        ("* @@reporter", 1, "`@@reporter` is not a valid owner"),
        ("* @", 1, "`@` is not a valid owner"),
        ("* jane@", 1, "`jane@` is not a valid owner"),
        ("* @a # owned by a", 1, "inline comments are not supported"),
        ("[]\n* @a", 1, "the section header has no name"),
        ("[ ]\n* @a", 1, "the section header has no name"),
        ("^[Docs][2]\n* @a", 1, "an optional section (`^[...]`) cannot require approvals"),
        ("[Docs] docs-team\n* @a", 1, "`docs-team` is not a valid default owner"),
        ("[Docs\n* @a", 1, "`[Docs` is not closed: write `[Name]`"),
        ("[Ss]rc/ @team", 1, "unexpected `rc/ @team` after the section header `[Ss]`"),
        ("[Docs][x] @a\n* @a", 1, "unexpected `[x] @a` after the section header `[Docs]`"),
    ],
)
def test_invalid_codeowners(text: str, line: int, reason: str) -> None:
    problems = owners_problems(text)
    assert problems, text
    location, message = problems[0]
    assert location == f"CODEOWNERS:{line}"
    assert reason in message


def test_codeowners_reports_every_error_with_its_line_and_the_file_path() -> None:
    text = "# owners\n* @lead\n\n[Docs]\ndocs/\nREADME.md someone\n^[Go][1] @go\n"
    problems = owners_problems(text, path=".gitlab/CODEOWNERS")
    assert [location for location, _ in problems] == [
        ".gitlab/CODEOWNERS:5",
        ".gitlab/CODEOWNERS:6",
        ".gitlab/CODEOWNERS:7",
    ]
    ctx = context(COMPLETE | {"CODEOWNERS"}, codeowners=CodeOwnersFile("CODEOWNERS", "x"))
    [problem] = CODEOWNERS.run(ctx, CODEOWNERS_ON)
    assert "https://docs.gitlab.com/user/project/codeowners/reference/" in problem.fix


def test_codeowners_bounds_the_number_of_findings() -> None:
    problems = owners_problems("\n".join(f"file{i}.txt" for i in range(60)))
    assert len(problems) == 51
    assert problems[-1] == ("CODEOWNERS", "10 more errors")


@pytest.mark.parametrize("text", ["", "# only comments\n\n", "[Docs] @docs\n"])
def test_codeowners_without_entries(text: str) -> None:
    assert owners_problems(text) == [
        ("CODEOWNERS", "the file assigns no owners: it has no `pattern @owner` entries")
    ]


def test_missing_codeowners() -> None:
    [problem] = CODEOWNERS.run(context(COMPLETE), CODEOWNERS_ON)
    assert problem.message == "no CODEOWNERS file in the repository root, docs/ or .gitlab/"
    assert "https://docs.gitlab.com/user/project/codeowners/" in problem.fix


def test_codeowners_in_docs_is_found_though_docs_is_not_in_the_tree_listing() -> None:
    ctx = context(COMPLETE, codeowners=CodeOwnersFile("docs/CODEOWNERS", "* @a"))
    assert CODEOWNERS.run(ctx, CODEOWNERS_ON) == []


def test_codeowners_deleted_by_the_merge_request_is_missing() -> None:
    paths = repository.apply_changes(
        COMPLETE | {"CODEOWNERS"}, [ChangedFile("CODEOWNERS", "CODEOWNERS", deleted_file=True)]
    )
    ctx = context(paths, codeowners=CodeOwnersFile("CODEOWNERS", "* @a"))
    [problem] = CODEOWNERS.run(ctx, CODEOWNERS_ON)
    assert problem.message.startswith("no CODEOWNERS file")


def test_parse_codeowners_counts_entries() -> None:
    errors, entries = repository.parse_codeowners("[A] @a\nx\ny @b\n!z\n")
    assert (errors, entries) == ([], 3)
