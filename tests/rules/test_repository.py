from __future__ import annotations

import pytest

from bot.model import ChangedFile, Severity
from bot.rules import repository

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


def test_complete_repository_passes() -> None:
    assert repository.required_files(COMPLETE).passed
    assert repository.issue_templates(COMPLETE).passed
    assert repository.merge_request_templates(COMPLETE).passed


@pytest.mark.parametrize(
    "paths",
    [
        {"readme", "licence.txt", "Contributing.rst", "CHANGES"},
        {"README.rst", "COPYING", "CONTRIBUTING", "HISTORY.md"},
        {"Readme.markdown", "LICENSE-MIT", "contributing.adoc", "NEWS"},
    ],
)
def test_usual_name_variants_are_accepted(paths: set[str]) -> None:
    assert repository.required_files(frozenset(paths)).passed


def test_missing_files_are_named_with_their_severity() -> None:
    outcome = repository.required_files(frozenset({"README.md", "docs/LICENSE"}))
    missing = {f.location: f.severity for f in outcome.findings}
    # A LICENSE below the root does not count: GitLab shows only the root one.
    assert missing == {
        "LICENSE": Severity.ERROR,
        "CONTRIBUTING": Severity.WARNING,
        "CHANGELOG": Severity.WARNING,
    }


def test_readme_directory_lookalike_does_not_count() -> None:
    outcome = repository.required_files(frozenset({"readme_assets/logo.png"}))
    assert "README" in {f.location for f in outcome.findings}


def test_templates_must_be_markdown_directly_in_the_directory() -> None:
    paths = frozenset({".gitlab/issue_templates/old.txt", ".gitlab/merge_request_templates/x/y.md"})
    assert not repository.issue_templates(paths).passed
    assert not repository.merge_request_templates(paths).passed


def test_description_and_topics() -> None:
    assert not repository.description("  \n").passed
    assert repository.description("A tool").passed
    assert not repository.topics([]).passed
    assert not repository.topics(["python"], minimum=2).passed
    assert repository.topics(["python"]).passed


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
