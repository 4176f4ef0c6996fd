"""The audit's verdicts: one row per project (or member), the run's result, its exit code.

Plain values shared by the audit (bot/audit.py), its renderers (bot/audit_report.py,
bot/audit_html.py) and its history (bot/audit_history.py); no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from bot.model import Finding, Severity

if TYPE_CHECKING:
    from bot.audit_history import Comparison

EXIT_COMPLIANT = 0
EXIT_NON_COMPLIANT = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


# https://docs.gitlab.com/user/profile/#add-details-to-your-profile-with-a-readme
PROFILE_README_DOC = (
    "https://docs.gitlab.com/user/profile/#add-details-to-your-profile-with-a-readme"
)
PROFILE_RULE = "profile.readme"


class Status(StrEnum):
    """The outcome of one project or member, from best to worst."""

    COMPLIANT = "compliant"  # no finding at all
    WARNINGS = "warnings"  # findings, none of severity error: gaps that do not fail the run
    NON_COMPLIANT = "non-compliant"  # an error finding, or an invalid config
    ERROR = "error"  # could not be judged; never counted as compliant


OUTCOMES = tuple(Status)


def outcome_of(findings: Sequence[Finding]) -> Status:
    if any(f.severity is Severity.ERROR for f in findings):
        return Status.NON_COMPLIANT
    return Status.WARNINGS if findings else Status.COMPLIANT


def check_of(finding: Finding) -> str:
    """What a finding says is missing, as one name for the report's chart and rule filter:
    the rule id, and for `repository.required_files` the file (README, LICENSE, ...)."""
    if finding.rule == "repository.required_files" and finding.location:
        return f"{finding.rule}: {finding.location}"
    return finding.rule


@dataclass(frozen=True)
class Row:
    """The verdict on one project (or, with --members, one member's profile README)."""

    kind: str  # "project" or "member"
    id: int
    name: str  # path_with_namespace, or the member's username
    web_url: str
    status: Status
    findings: tuple[Finding, ...] = ()
    reason: str = ""  # why the row is an error: what could not be read
    details: tuple[str, ...] = ()  # e.g. the config errors, one per line
    config_source: str = ""  # which rules judged it: defaults, the project's file, --config

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING)

    @property
    def checks(self) -> tuple[str, ...]:
        """What the row lacks, one name per check (see `check_of`), in finding order."""
        return tuple(dict.fromkeys(check_of(f) for f in self.findings))

    def fails(self, fail_on: Severity = Severity.ERROR) -> bool:
        """Whether the row fails the run: an error or a non-compliant row, and with
        `--fail-on warning` a row with warnings too."""
        if self.status is Status.WARNINGS:
            return fail_on is Severity.WARNING
        return self.status is not Status.COMPLIANT

    def summary(self) -> str:
        """One line: the reason of an error, else what the findings say."""
        text = (
            self.reason
            if self.status is Status.ERROR
            else "; ".join(f.message for f in self.findings)
        )
        if self.details:
            more = f" (and {len(self.details) - 1} more)" if len(self.details) > 1 else ""
            text = f"{text}: {self.details[0]}{more}"
        return text or "ok"


@dataclass
class AuditResult:
    group: str
    projects: list[Row] = field(default_factory=list)
    members: list[Row] | None = None  # None: --members was not asked for
    listing_error: str | None = None  # the project listing failed (rows may be partial)
    members_error: str | None = None
    seconds: float = 0.0
    finished_at: str = ""  # ISO 8601, UTC
    fail_on: Severity = Severity.ERROR  # the least severe finding that fails the run
    comparison: Comparison | None = None  # against the run --compare read (bot.audit_history)

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.listing_error, self.members_error) if e]

    def rows(self) -> list[Row]:
        return [*self.projects, *(self.members or [])]

    def exit_code(self) -> int:
        rows = self.rows()
        if self.errors or any(r.status is Status.ERROR for r in rows):
            return EXIT_ERROR
        if any(r.fails(self.fail_on) for r in rows):
            return EXIT_NON_COMPLIANT
        return EXIT_COMPLIANT
