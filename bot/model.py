"""Plain values shared by the rules, the engine and the renderers.

Nothing here does I/O: these are the literals that rules take and return, so a rule can be
tested with values written in the test itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


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
    committer_name: str = ""
    committer_email: str = ""

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
    diff: str = ""  # the unified diff's hunks, as GitLab's diffs and compare APIs give them
    # False when GitLab left the diff text out (`collapsed`/`too_large`, or diff limits):
    # rules that read lines must then say they could not, rather than pass.
    diff_complete: bool = True

    def added_lines(self) -> list[tuple[int, str]]:
        """(line number in the new file, text) of every added line."""
        added: list[tuple[int, str]] = []
        line_no = 0
        in_hunk = False
        for line in self.diff.splitlines():
            if line.startswith("@@"):
                # @@ -a,b +c,d @@: the new file's hunk starts at line c.
                match = _HUNK.match(line)
                line_no = int(match.group(1)) if match else 0
                in_hunk = True
            elif not in_hunk:
                continue  # `--- a/x` / `+++ b/x` headers come before the first hunk only
            elif line.startswith("+"):
                added.append((line_no, line[1:]))
                line_no += 1
            elif not line.startswith("-") and not line.startswith("\\"):
                line_no += 1
        return added

    def line_counts(self) -> tuple[int, int]:
        """(added, removed) lines in the diff."""
        added = removed = 0
        in_hunk = False
        for line in self.diff.splitlines():
            if line.startswith("@@"):
                in_hunk = True
            elif in_hunk and line.startswith("+"):
                added += 1
            elif in_hunk and line.startswith("-"):
                removed += 1
        return added, removed


@dataclass(frozen=True)
class Waived:
    """A maintainer's waiver of one finding: who, why, and until when (seconds since the
    epoch, UTC). A waived finding is shown apart and does not count towards the verdict."""

    by: str
    reason: str
    until: float


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
    # The target branch, when this repository finding already holds there: not the MR's
    # doing, so it is shown apart and does not count towards the verdict.
    already_on: str = ""
    # Set when an active waiver covers this finding (see bot/waivers.py).
    waived: Waived | None = None

    @property
    def counts(self) -> bool:
        """Whether the finding counts towards the verdict: not inherited, not waived."""
        return not self.already_on and self.waived is None


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
    details: tuple[str, ...] = ()  # what the error consists of, e.g. config errors by line
    facts: dict[str, int] = field(default_factory=dict)
    config_source: str = "defaults"
    # The group policy files that applied, and weakenings of locked rules ignored (policy).
    policy_notes: tuple[str, ...] = ()
    superseded_by: str | None = None  # the MR's head moved on: publish nothing
    # The error was GitLab's (unreachable, 5xx, rate limit), not the project's: after
    # publishing "could not complete", the job is marked failed so it runs again later.
    retryable: bool = False

    @property
    def findings(self) -> list[Finding]:
        return [f for outcome in self.outcomes for f in outcome.findings]

    @property
    def error_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR and f.counts)

    @property
    def warning_count(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.WARNING and f.counts)

    @property
    def inherited(self) -> list[Finding]:
        """Findings that already hold on the target branch (see `Finding.already_on`)."""
        return [f for f in self.findings if f.already_on and f.waived is None]

    @property
    def waived(self) -> list[Finding]:
        """Findings an active waiver covers (see `Finding.waived`)."""
        return [f for f in self.findings if f.waived is not None]

    @property
    def passed(self) -> bool:
        return self.error is None and self.error_count == 0
