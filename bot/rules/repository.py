"""Repository hygiene: the files, templates, description and topics a project should have.

These rules judge a set of file paths (the tree of the branch being checked, with an MR's own
file changes applied) and the project's description and topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from bot.model import ChangedFile, Finding, RuleOutcome, Severity

ISSUE_TEMPLATES_DIR = ".gitlab/issue_templates"
MR_TEMPLATES_DIR = ".gitlab/merge_request_templates"


@dataclass(frozen=True)
class RequiredFile:
    """A file the project should have, known by any of several usual names."""

    label: str
    stems: frozenset[str]  # lower-case names without extension
    severity: Severity
    why: str


# The names people use for each file, matched at the repository root, any case, with or
# without an extension (README.md, readme.rst, LICENCE, COPYING, CHANGES.txt, ...).
REQUIRED_FILES: tuple[RequiredFile, ...] = (
    RequiredFile(
        "README",
        frozenset({"readme"}),
        Severity.ERROR,
        "tells people what the project is and how to use it",
    ),
    RequiredFile(
        "LICENSE",
        frozenset({"license", "licence", "copying", "unlicense"}),
        Severity.ERROR,
        "says under which terms others may use the code",
    ),
    RequiredFile(
        "CONTRIBUTING",
        frozenset({"contributing"}),
        Severity.WARNING,
        "tells contributors how to propose changes",
    ),
    RequiredFile(
        "CHANGELOG",
        frozenset({"changelog", "changes", "history", "news", "releases"}),
        Severity.WARNING,
        "records what changed in each release",
    ),
)


def apply_changes(paths: Iterable[str], changes: Sequence[ChangedFile]) -> frozenset[str]:
    """The tree's paths after a merge request's file changes (adds, deletes, renames)."""
    result = set(paths)
    for change in changes:
        if change.deleted_file or change.renamed_file:
            result.discard(change.old_path)
        if not change.deleted_file:
            result.add(change.new_path)
    return frozenset(result)


def _stem(name: str) -> str:
    return name.split(".", 1)[0].lower()


def _matches(required: RequiredFile, path: str) -> bool:
    if "/" in path:
        return False
    stem = _stem(path)
    # LICENSE-MIT, LICENSE-APACHE: the dual-licence convention.
    return stem in required.stems or any(stem.startswith(s + "-") for s in required.stems)


def required_files(paths: frozenset[str]) -> RuleOutcome:
    findings = tuple(
        Finding(
            rule="repository.required_files",
            severity=required.severity,
            message=f"{required.label} is missing",
            fix=f"Add a {required.label} file at the repository root; it {required.why}.",
            location=required.label,
        )
        for required in REQUIRED_FILES
        if not any(_matches(required, p) for p in paths)
    )
    return RuleOutcome(
        "repository.required_files", "README, LICENSE, CONTRIBUTING, CHANGELOG", findings
    )


def _has_template(paths: frozenset[str], directory: str) -> bool:
    # GitLab offers the Markdown files of these directories as templates.
    # https://docs.gitlab.com/user/project/description_templates/
    return any(
        PurePosixPath(p).parent == PurePosixPath(directory) and p.lower().endswith(".md")
        for p in paths
    )


def issue_templates(paths: frozenset[str]) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if not _has_template(paths, ISSUE_TEMPLATES_DIR):
        findings = (
            Finding(
                rule="repository.issue_templates",
                severity=Severity.WARNING,
                message=f"no issue template in {ISSUE_TEMPLATES_DIR}/",
                fix=f"Add at least one Markdown file to {ISSUE_TEMPLATES_DIR}/.",
                location=ISSUE_TEMPLATES_DIR,
            ),
        )
    return RuleOutcome("repository.issue_templates", "Issue templates", findings)


def merge_request_templates(paths: frozenset[str]) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if not _has_template(paths, MR_TEMPLATES_DIR):
        findings = (
            Finding(
                rule="repository.merge_request_templates",
                severity=Severity.WARNING,
                message=f"no merge request template in {MR_TEMPLATES_DIR}/",
                fix=f"Add at least one Markdown file to {MR_TEMPLATES_DIR}/.",
                location=MR_TEMPLATES_DIR,
            ),
        )
    return RuleOutcome("repository.merge_request_templates", "Merge request templates", findings)


def description(project_description: str) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if not project_description.strip():
        findings = (
            Finding(
                rule="repository.description",
                severity=Severity.WARNING,
                message="the project has no description",
                fix="Set one in Settings > General > Naming, description, topics.",
                location="project settings",
            ),
        )
    return RuleOutcome("repository.description", "Project description", findings)


def topics(project_topics: Sequence[str], *, minimum: int = 1) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if len([t for t in project_topics if t.strip()]) < minimum:
        findings = (
            Finding(
                rule="repository.topics",
                severity=Severity.WARNING,
                message=f"the project has {len(project_topics)} topic(s); "
                f"at least {minimum} expected",
                fix="Add topics in Settings > General > Naming, description, topics.",
                location="project settings",
            ),
        )
    return RuleOutcome("repository.topics", "Project topics", findings)
