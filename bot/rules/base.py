"""What every rule is made of: its config model, the context it judges, and what it returns.

A rule is a pure function `check(context, config) -> Iterable[Problem]`. It declares which
inputs it `needs`, so the engine reads from GitLab (or git) only what the enabled rules use,
and which scopes (merge request, push) it applies to. Its config is a pydantic model: the
defaults are the quiet defaults, and the same model validates `.gitlab/compliance.yml` and
produces its JSON Schema.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.model import ChangedFile, Commit, Severity

SeverityLevel = Literal["error", "warning", "info", "off"]

SEVERITY_HELP = (
    "How a finding of this rule counts: `error` fails the check, `warning` and `info` are "
    "reported only, `off` disables the rule."
)
# A rule config's `severity` with its help in the JSON Schema; the config gives the default:
# `severity: DocumentedSeverity = "warning"`.
DocumentedSeverity = Annotated[SeverityLevel, Field(description=SEVERITY_HELP)]


class Need(StrEnum):
    """Inputs a rule can ask for; each costs GitLab calls, so only enabled rules ask."""

    COMMITS = "commits"  # the commits under review, oldest first
    CHANGES = "changes"  # the changed files, with their diffs
    TREE = "tree"  # file paths at the root and under .gitlab/ of the judged tree
    PROJECT = "project"  # the project's description and topics
    FILE_SIZES = "file_sizes"  # byte sizes of added and modified files
    SIGNATURES = "signatures"  # whether each commit's signature is verified
    CODEOWNERS = "codeowners"  # the CODEOWNERS file, when there is one
    # The whole text of changed files whose diff GitLab left out (collapsed, too large)
    FILE_TEXTS = "file_texts"


@dataclass(frozen=True)
class Fact:
    """A fact a rule may ask for beyond the `Need`s: one Source method answers it.

    The generic seam for a new kind of fact: `name` is both the Source method that answers
    it (`async def <name>(self, where: source.Where) -> value | None`) and its key in
    `Context.facts`; the engine reads it when an enabled rule needs it, and the incremental
    store keeps it by that name. A Source that cannot tell answers None (or has no such
    method): the rule is then not judged, for `cannot_tell`'s reason. A value must be plain
    JSON (it is stored with an MR's inputs).
    """

    name: str
    cannot_tell: str = ""

    def of(self, context: Context) -> Any:
        """The fact as read for this check; None when it was not read."""
        return context.facts.get(self.name)


class Scope(StrEnum):
    MERGE_REQUEST = "merge_request"
    PUSH = "push"


BOTH_SCOPES = frozenset({Scope.MERGE_REQUEST, Scope.PUSH})
MR_ONLY = frozenset({Scope.MERGE_REQUEST})


@dataclass(frozen=True)
class ProjectFacts:
    description: str = ""
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class MergeRequestFacts:
    """What the Merge Request Hook payload says about the MR; no API call needed."""

    title: str
    description: str = ""
    labels: tuple[str, ...] = ()
    draft: bool = False
    source_branch: str = ""
    target_branch: str = ""
    squash: bool = False
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeOwnersFile:
    path: str
    text: str


class SquashPolicy(StrEnum):
    TITLE = "title"  # judge the MR title, GitLab's default squash commit message
    COMMITS = "commits"  # judge each commit anyway


@dataclass(frozen=True)
class Context:
    """Everything a rule may look at. Fields a rule did not `need` keep their defaults."""

    scope: Scope
    branch: str  # the MR's source branch, or the pushed branch
    target_branch: str  # the MR's target branch, or the pushed branch
    commits: tuple[Commit, ...] = ()
    changes: tuple[ChangedFile, ...] = ()
    paths: frozenset[str] = frozenset()
    project: ProjectFacts = ProjectFacts()
    merge_request: MergeRequestFacts | None = None
    file_sizes: Mapping[str, int] = field(default_factory=dict)
    signatures: Mapping[str, bool] = field(default_factory=dict)
    codeowners: CodeOwnersFile | None = None
    squash_policy: SquashPolicy = SquashPolicy.TITLE
    # What GitLab left out of `changes` when its diff limits cut the file list short, e.g.
    # "GitLab's diff limits stopped the list at 1000 files"; empty when every file is listed.
    changes_truncated: str = ""
    # path -> the whole file at the head, read because GitLab left its diff out (a changed
    # file with `diff_complete` False that is not here could not be read).
    file_texts: Mapping[str, str] = field(default_factory=dict)
    # Fact name -> what the Source answered (see `Fact`).
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """A commit message to judge, and how a finding names it."""

    text: str
    location: str
    commit: Commit | None  # None for the MR title standing in for a squash commit


def messages_to_judge(context: Context) -> list[Message]:
    """The commit messages the message rules judge.

    When an MR will be squashed, GitLab's default squash commit message is the MR title
    (https://docs.gitlab.com/user/project/merge_requests/commit_templates/), so that is what
    lands on the target branch and what is judged, unless the config says `commits`.
    """
    mr = context.merge_request
    if mr is not None and mr.squash and context.squash_policy is SquashPolicy.TITLE:
        return [Message(mr.title, "squash commit (MR title)", None)]
    return [Message(c.message, commit_location(c), c) for c in context.commits]


def code(text: str) -> str:
    """`text` marked as code in a message, whatever backticks it holds: the fence is longer
    than any backtick run inside (https://spec.commonmark.org/0.31.2/#code-spans). The note
    re-escapes it (bot.report.escape); plain-text outputs show it as written."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def commit_location(commit: Commit) -> str:
    title = commit.title.replace("\r", " ")
    if len(title) > 72:
        title = title[:71] + "…"
    return f"commit {commit.short_sha}: {title}"


class ConfigSection(BaseModel):
    """A mapping of `.gitlab/compliance.yml`: a key it does not declare is an error."""

    model_config = ConfigDict(extra="forbid")


class RuleConfig(ConfigSection):
    """Options every rule has. A rule's own model adds its parameters, with defaults."""

    severity: DocumentedSeverity = "off"
    branches: list[str] = Field(
        default_factory=list,
        description="Only judge MRs targeting (or pushes to) these branches: glob patterns. "
        "Empty: every branch.",
    )
    waivable: bool = Field(
        default=True,
        description="Whether a maintainer may waive this rule's findings on an MR with "
        "`/compliance waive`.",
    )
    waiver_access_level: int | None = Field(
        default=None,
        ge=10,
        le=60,
        description="The access level needed to waive this rule (40 Maintainer, 50 Owner); "
        "unset: `waivers.access_level`.",
    )

    @field_validator("severity", mode="before", check_fields=False)
    @classmethod
    def _bare_off(cls, value: Any) -> Any:
        # `severity: off` unquoted is YAML 1.1's boolean false (PyYAML reads `off`, `no` and
        # `false` alike); an author who wrote `off` meant the rule off.
        return "off" if value is False else value

    def applies_to_branch(self, branch: str) -> bool:
        return not self.branches or any(fnmatch.fnmatchcase(branch, p) for p in self.branches)


@dataclass(frozen=True)
class Problem:
    """One thing a rule found wrong. The engine turns it into a Finding with the rule's id
    and configured severity; `severity` is set only by rules whose parts differ in weight."""

    message: str
    location: str = ""
    fix: str = ""
    severity: Severity | None = None
    # The facts this problem states (commitlint's rule names, e.g. "subject-full-stop"):
    # when another rule states all of them at the same location at least as severely, the
    # engine drops this one, so two rules never report the same fact.
    covers: frozenset[str] = frozenset()


C = TypeVar("C", bound=RuleConfig)


@dataclass(frozen=True)
class Rule(Generic[C]):
    id: str
    title: str
    config: type[C]
    check: Callable[[Context, C], Iterable[Problem]]
    needs: frozenset[Need | Fact] = frozenset()
    scopes: frozenset[Scope] = BOTH_SCOPES
    fix: str = ""  # how to fix, when a Problem does not say

    def default_config(self) -> C:
        return self.config()

    def run(self, context: Context, config: Any) -> list[Problem]:
        return list(self.check(context, config))


_FAMILY_AND_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")


def check_rule_ids(rules: Iterable[Rule[Any]]) -> None:
    seen: set[str] = set()
    for rule in rules:
        if not _FAMILY_AND_NAME.match(rule.id) or rule.id in seen:
            raise ValueError(f"bad or duplicate rule id {rule.id!r}")
        seen.add(rule.id)
