"""Repository hygiene: the files, templates, CODEOWNERS, description and topics a project
should have.

The file rules judge `context.paths`: the file paths at the root and under `.gitlab/` of the
branch being checked, with an MR's own file changes applied (`apply_changes`), so an MR that
adds a LICENSE passes and one that deletes it fails. The project rules judge the project's
description and topics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Literal

import pathspec
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.model import ChangedFile, Severity
from bot.rules.base import (
    C,
    CodeOwnersFile,
    Context,
    DocumentedSeverity,
    Need,
    Problem,
    Rule,
    RuleConfig,
)
from bot.rules.base import code as _code

_TEMPLATES_DOC = "https://docs.gitlab.com/user/project/description_templates/"
_CODEOWNERS_DOC = "https://docs.gitlab.com/user/project/codeowners/"
_CODEOWNERS_SYNTAX_DOC = "https://docs.gitlab.com/user/project/codeowners/reference/"
_PROJECT_SETTINGS_FIX = "Settings > General > Naming, description, topics"
# At most this many CODEOWNERS findings; the rest are summed up in one more finding.
_MAX_PROBLEMS = 50

ISSUE_TEMPLATES_DIR = ".gitlab/issue_templates"
MR_TEMPLATES_DIR = ".gitlab/merge_request_templates"


def _tree_rule(
    rule_id: str,
    title: str,
    config: type[C],
    check: Callable[[Context, C], Iterable[Problem]],
    *more_needs: Need,
) -> Rule[C]:
    """A rule that judges the tree's paths (`context.paths`), and whatever else it needs."""
    return Rule(rule_id, title, config, check, needs=frozenset({Need.TREE, *more_needs}))


def _project_rule(
    rule_id: str, title: str, config: type[C], check: Callable[[Context, C], Iterable[Problem]]
) -> Rule[C]:
    """A rule that judges the project's settings (`context.project`)."""
    return Rule(rule_id, title, config, check, needs=frozenset({Need.PROJECT}))


def apply_changes(paths: Iterable[str], changes: Sequence[ChangedFile]) -> frozenset[str]:
    """The tree's paths after a merge request's file changes (adds, deletes, renames)."""
    result = set(paths)
    for change in changes:
        if change.deleted_file or change.renamed_file:
            result.discard(change.old_path)
        if not change.deleted_file:
            result.add(change.new_path)
    return frozenset(result)


# --------------------------------------------------------------------------------------------
# repository.required_files
# --------------------------------------------------------------------------------------------

FileSeverity = Literal["error", "warning", "info"]


def _variants(*stems: str, dash: bool = False) -> list[str]:
    """`X` and `X.*` (any extension) for each name, and `X-*` (LICENSE-MIT) if `dash`."""
    return [v for s in stems for v in (s, f"{s}.*", *((f"{s}-*",) if dash else ()))]


@lru_cache(maxsize=256)
def _spec(accept: tuple[str, ...]) -> pathspec.PathSpec[Any]:
    # Case-insensitive: both the patterns and the names are lower-cased.
    return pathspec.PathSpec.from_lines("gitignore", [p.lower() for p in accept])


class RequiredFileSpec(BaseModel):
    """One file the project should have, known by any of several names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="What the file is called in findings.")
    accept: list[str] = Field(
        min_length=1,
        description="Names that count as this file: file names or gitignore-style globs "
        "(`README.*`, `LICENSE-*`, `!LICENSE.old` to exclude), matched case-insensitively "
        "against the files at the repository root.",
    )
    severity: FileSeverity | None = Field(
        None,
        description="Severity of this file's finding; unset, the rule's severity applies.",
    )
    why: str = Field("", description="What the file is for, quoted in the fix text.")

    @field_validator("accept")
    @classmethod
    def _root_globs(cls, accept: list[str]) -> list[str]:
        for pattern in accept:
            body = pattern.removeprefix("!").removeprefix("/")
            if not body.strip() or pattern.startswith("#"):
                raise ValueError(f"{pattern!r} matches no file name")
            if "/" in body:
                raise ValueError(
                    f"{pattern!r}: only files at the repository root are looked at, so a "
                    "pattern cannot hold a `/` other than a leading one"
                )
        if all(p.startswith("!") for p in accept):
            raise ValueError("`accept` holds only exclusions (`!...`), so nothing would count")
        try:
            _spec(tuple(accept))
        except ValueError as exc:  # pathspec's GitIgnorePatternError is a ValueError
            raise ValueError(f"not a gitignore-style pattern: {exc}") from None
        return accept


# The names people use for each file: the root README, LICENSE, ... in any case, with or
# without an extension (README.md, readme.rst, LICENCE, COPYING, LICENSE-MIT, CHANGES.txt).
DEFAULT_REQUIRED_FILES: tuple[RequiredFileSpec, ...] = (
    RequiredFileSpec(
        name="README",
        accept=_variants("README"),
        severity="error",
        why="tells people what the project is and how to use it",
    ),
    RequiredFileSpec(
        name="LICENSE",
        accept=_variants("LICENSE", "LICENCE", "COPYING", "UNLICENSE", dash=True),
        severity="error",
        why="says under which terms others may use the code",
    ),
    RequiredFileSpec(
        name="CONTRIBUTING",
        accept=_variants("CONTRIBUTING"),
        severity="warning",
        why="tells contributors how to propose changes",
    ),
    RequiredFileSpec(
        name="CHANGELOG",
        accept=_variants("CHANGELOG", "CHANGES", "HISTORY", "NEWS", "RELEASES"),
        severity="warning",
        why="records what changed in each release",
    ),
)


class RequiredFilesConfig(RuleConfig):
    severity: DocumentedSeverity = "error"
    files: list[RequiredFileSpec] = Field(
        default_factory=lambda: list(DEFAULT_REQUIRED_FILES),
        description="The files the repository root must hold. Setting this replaces the "
        "default list (README and LICENSE as errors, CONTRIBUTING and CHANGELOG as warnings).",
    )


def _check_required_files(context: Context, config: RequiredFilesConfig) -> Iterator[Problem]:
    # Only the root counts: it is where GitLab looks for the README, LICENSE, CONTRIBUTING and
    # CHANGELOG it links from the project overview.
    root = [path.lower() for path in context.paths if "/" not in path]
    for required in config.files:
        spec = _spec(tuple(required.accept))
        if any(spec.match_file(name) for name in root):
            continue
        names = ", ".join(_code(p) for p in required.accept[:4])
        more = ", …" if len(required.accept) > 4 else ""
        purpose = f"; it {required.why}" if required.why else ""
        yield Problem(
            message=f"{required.name} is missing",
            location=required.name,
            fix=f"Add a {required.name} file at the repository root ({names}{more}){purpose}.",
            severity=Severity(required.severity) if required.severity else None,
        )


REQUIRED_FILES = _tree_rule(
    "repository.required_files", "Required files", RequiredFilesConfig, _check_required_files
)


# --------------------------------------------------------------------------------------------
# repository.issue_templates and repository.merge_request_templates
# --------------------------------------------------------------------------------------------


def _has_template(paths: frozenset[str], directory: str) -> bool:
    # GitLab offers the `.md` files directly in these directories as description templates.
    # https://docs.gitlab.com/user/project/description_templates/
    return any(
        PurePosixPath(p).parent == PurePosixPath(directory) and p.lower().endswith(".md")
        for p in paths
    )


def _templates_check(
    directory: str, kind: str
) -> Callable[[Context, RuleConfig], Iterator[Problem]]:
    """The check that the tree offers `kind` description templates in `directory`."""

    def check(context: Context, config: RuleConfig) -> Iterator[Problem]:
        if _has_template(context.paths, directory):
            return
        yield Problem(
            message=f"no {kind} template in {directory}/",
            location=directory,
            fix=f"Add at least one Markdown file to {directory}/ (e.g. {directory}/Default.md, "
            f"which GitLab also uses as the default template); {_TEMPLATES_DOC}",
        )

    return check


class IssueTemplatesConfig(RuleConfig):
    severity: DocumentedSeverity = "warning"


class MergeRequestTemplatesConfig(RuleConfig):
    severity: DocumentedSeverity = "warning"


_check_issue_templates = _templates_check(ISSUE_TEMPLATES_DIR, "issue")
_check_mr_templates = _templates_check(MR_TEMPLATES_DIR, "merge request")


ISSUE_TEMPLATES = _tree_rule(
    "repository.issue_templates", "Issue templates", IssueTemplatesConfig, _check_issue_templates
)
MERGE_REQUEST_TEMPLATES = _tree_rule(
    "repository.merge_request_templates",
    "Merge request templates",
    MergeRequestTemplatesConfig,
    _check_mr_templates,
)


# --------------------------------------------------------------------------------------------
# repository.description and repository.topics
# --------------------------------------------------------------------------------------------


class ProjectDescriptionConfig(RuleConfig):
    severity: DocumentedSeverity = "warning"


class TopicsConfig(RuleConfig):
    severity: DocumentedSeverity = "warning"
    minimum: int = Field(1, ge=1, description="Fewest topics the project must have.")


def _check_description(context: Context, config: ProjectDescriptionConfig) -> Iterator[Problem]:
    if context.project.description.strip():
        return
    yield Problem(
        message="the project has no description",
        location="project settings",
        fix=f"Say in one sentence what the project is, in {_PROJECT_SETTINGS_FIX}.",
    )


def _check_topics(context: Context, config: TopicsConfig) -> Iterator[Problem]:
    count = len([topic for topic in context.project.topics if topic.strip()])
    if count >= config.minimum:
        return
    yield Problem(
        message=f"the project has {count} topic{'' if count == 1 else 's'}; "
        f"at least {config.minimum} expected",
        location="project settings",
        fix=f"Add topics (language, domain, purpose) in {_PROJECT_SETTINGS_FIX}.",
    )


DESCRIPTION = _project_rule(
    "repository.description", "Project description", ProjectDescriptionConfig, _check_description
)
TOPICS = _project_rule("repository.topics", "Project topics", TopicsConfig, _check_topics)


# --------------------------------------------------------------------------------------------
# repository.codeowners
# --------------------------------------------------------------------------------------------
#
# Ported from GitLab's parser, ee/lib/gitlab/code_owners/{file,section_parser,
# reference_extractor}.rb (as of the MALFORMED_ENTRY_OWNER change, gitlab-org/gitlab!180978),
# and the syntax reference https://docs.gitlab.com/user/project/codeowners/reference/:
#
# * each line is stripped; blank lines and lines starting with `#` are skipped (so a pattern
#   for a file starting with `#` is written `\#file`);
# * a line starting with `[name]` or `^[name]` is a section header: `^` makes the section
#   optional, `[name][N]` requires N approvals (not allowed with `^`), and owners after the
#   header are the section's default owners;
# * any other line is an entry, `pattern owner...`, split at the first whitespace that is not
#   escaped with `\`; an entry without owners takes the section's default owners and is an
#   error without them; `!pattern` (GitLab 17.10+) excludes files and takes no owners;
# * an owner is `@user`, `@group/subgroup`, `@@developer`/`@@maintainer`/`@@owner` (a plural
#   `s` allowed, any case) or an email address. Inline comments are not supported: GitLab
#   reads `# ...` after an entry as more owners, and reports them malformed.
#
# Deliberately stricter than GitLab in one way: GitLab accepts an owner token when a reference
# can be extracted from anywhere in it (`@alice,` yields `@alice`); here the whole token must
# be one owner, so stray punctuation is pointed out before it surprises anyone.

# Where GitLab looks for the file, in this order; the first found is used, the others are
# ignored (https://docs.gitlab.com/user/project/codeowners/#codeowners-file). The engine reads
# `context.codeowners` from the first of these.
CODEOWNERS_LOCATIONS = ("CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")

# SectionParser::HEADER_REGEX without its default-owners part (checked token by token below).
_SECTION_HEADER = re.compile(r"^(\^)?\[(.*?)\](?:\[(\d*?)\])?")
# SectionParser::REGEX_INVALID_SECTION: `[name` with no closing bracket.
_UNCLOSED_SECTION = re.compile(r"^(\^)?\[[^\]]+?$")
_ENTRY_SPLIT = re.compile(r"(?<!\\)\s+")
# ReferenceExtractor: Gitlab::PathRegex namespace paths, `@@role`, and EMAIL_REGEXP
# (`[^@\s]{1,100}@[^@\s]{1,255}` not ending in a non-word character; Ruby's \w is ASCII).
_USER_OR_GROUP = re.compile(r"@[A-Za-z0-9_.][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*")
_ROLE = re.compile(r"@@(?:developer|maintainer|owner)s?", re.IGNORECASE)
_EMAIL = re.compile(r"[^@\s]{1,100}@[^@\s]{0,254}[A-Za-z0-9_]")
_OWNER_FORMS = (
    "`@user`, `@group/subgroup`, `@@developer`, `@@maintainer`, `@@owner` or an email address"
)


@dataclass(frozen=True)
class CodeOwnersError:
    line: int
    reason: str


class CodeOwnersConfig(RuleConfig):
    severity: DocumentedSeverity = "off"


def _is_owner(token: str) -> bool:
    return any(form.fullmatch(token) for form in (_ROLE, _USER_OR_GROUP, _EMAIL))


def _owner_errors(line: int, owners: Sequence[str], what: str) -> Iterator[CodeOwnersError]:
    for index, token in enumerate(owners):
        if token.startswith("#"):
            comment = " ".join(owners[index:])
            yield CodeOwnersError(
                line,
                f"inline comments are not supported: GitLab reads {_code(_short(comment))} as "
                "owners; move the comment to a line of its own",
            )
            return
        if not _is_owner(token):
            yield CodeOwnersError(
                line, f"{_code(_short(token))} is not a valid {what}: use {_OWNER_FORMS}"
            )


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


def parse_codeowners(text: str) -> tuple[list[CodeOwnersError], int]:
    """The syntax errors of a CODEOWNERS file, and how many entries it has."""
    errors: list[CodeOwnersError] = []
    entries = 0
    default_owners: list[str] = []  # of the current section; none before the first header
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION_HEADER.match(line)
        if header:
            optional, name, approvals = header.group(1), header.group(2), header.group(3)
            if not name.strip():
                errors.append(CodeOwnersError(number, "the section header has no name"))
            if optional and approvals and int(approvals) > 0:
                errors.append(
                    CodeOwnersError(
                        number,
                        f"an optional section (`^[...]`) cannot require approvals: remove "
                        f"`[{approvals}]` or the `^`",
                    )
                )
            rest = line[header.end() :]
            if rest and not rest[0].isspace():
                errors.append(
                    CodeOwnersError(
                        number,
                        f"unexpected {_code(_short(rest))} after the section header "
                        f"{_code(_short(header.group(0)))}: default owners follow after a "
                        "space, and a pattern starting with `[` must be escaped as `\\[`",
                    )
                )
                default_owners = []
                continue
            default_owners = rest.split()
            errors.extend(_owner_errors(number, default_owners, "default owner"))
            continue
        if _UNCLOSED_SECTION.match(line):
            errors.append(
                CodeOwnersError(number, f"{_code(_short(line))} is not closed: write `[Name]`")
            )
            continue
        entries += 1
        pattern, *rest_of_line = _ENTRY_SPLIT.split(line, maxsplit=1)
        if pattern.startswith("!"):
            continue  # an exclusion: GitLab reads no owners for it
        owners = rest_of_line[0].split() if rest_of_line else []
        errors.extend(_owner_errors(number, owners, "owner"))
        if not owners and not default_owners:
            errors.append(
                CodeOwnersError(
                    number,
                    f"{_code(_short(pattern))} has no owners, and its section has no default "
                    "owners",
                )
            )
    return errors, entries


def _visible_path(path: str) -> bool:
    """Whether `context.paths` (the root and `.gitlab/`) would list this file."""
    return "/" not in path or path.startswith(".gitlab/")


def _check_codeowners(context: Context, config: CodeOwnersConfig) -> Iterator[Problem]:
    codeowners: CodeOwnersFile | None = context.codeowners
    # An MR that deletes the file: the engine may have read it from the target branch, but the
    # judged tree (with the MR's changes applied) no longer has it.
    if (
        codeowners is not None
        and context.paths
        and _visible_path(codeowners.path)
        and codeowners.path not in context.paths
    ):
        codeowners = None
    if codeowners is None:
        yield Problem(
            message="no CODEOWNERS file in the repository root, docs/ or .gitlab/",
            location="CODEOWNERS",
            fix="Add a CODEOWNERS file that names who owns which files (GitLab reads the "
            f"first of {', '.join(CODEOWNERS_LOCATIONS)}); {_CODEOWNERS_DOC}",
        )
        return
    errors, entries = parse_codeowners(codeowners.text)
    fix = f"Correct the line; syntax: {_CODEOWNERS_SYNTAX_DOC}"
    for error in errors[:_MAX_PROBLEMS]:
        yield Problem(message=error.reason, location=f"{codeowners.path}:{error.line}", fix=fix)
    if len(errors) > _MAX_PROBLEMS:
        yield Problem(
            message=f"{len(errors) - _MAX_PROBLEMS} more errors",
            location=codeowners.path,
            fix=fix,
        )
    if entries == 0 and not errors:
        yield Problem(
            message="the file assigns no owners: it has no `pattern @owner` entries",
            location=codeowners.path,
            fix=f"Add entries such as `* @team-lead`; {_CODEOWNERS_SYNTAX_DOC}",
        )


CODEOWNERS = _tree_rule(
    "repository.codeowners", "CODEOWNERS", CodeOwnersConfig, _check_codeowners, Need.CODEOWNERS
)


RULES: tuple[Rule[Any], ...] = (
    REQUIRED_FILES,
    ISSUE_TEMPLATES,
    MERGE_REQUEST_TEMPLATES,
    DESCRIPTION,
    TOPICS,
    CODEOWNERS,
)
