"""Plain values shared by the rules, the engine and the renderers.

Nothing here does I/O: these are the literals that rules take and return, so a rule can be
tested with values written in the test itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author_name: str = ""
    author_email: str = ""
    parent_ids: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """The first line of the message, as GitLab and git show it."""
        return self.message.split("\n", 1)[0].rstrip("\r")

    @property
    def short_sha(self) -> str:
        return self.sha[:8]


@dataclass(frozen=True)
class ChangedFile:
    """One entry of a merge request's diff or a compare, reduced to what rules look at."""

    old_path: str
    new_path: str
    new_file: bool = False
    deleted_file: bool = False
    renamed_file: bool = False


@dataclass(frozen=True)
class Finding:
    """One problem a rule found.

    `rule` is the rule id (`family.name`), `location` says where (a commit, a file, the MR),
    and `fix` tells the author how to make the finding go away.
    """

    rule: str
    severity: Severity
    message: str
    fix: str = ""
    location: str = ""


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule concluded: it passed when it has no findings."""

    rule: str
    title: str
    findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Report:
    """The result of one check of one head.

    `error` is set when the check could not complete (GitLab unreadable after retries):
    such a report is never a pass, whatever `outcomes` holds.
    """

    head_sha: str
    outcomes: tuple[RuleOutcome, ...] = ()
    error: str | None = None
    facts: dict[str, int] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        return [f for outcome in self.outcomes for f in outcome.findings]

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def passed(self) -> bool:
        return self.error is None and self.error_count == 0
