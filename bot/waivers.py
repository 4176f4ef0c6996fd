"""Waivers: a maintainer overrides findings of one rule on one MR, with a reason and an expiry.

Pure: which findings a `/compliance waive` command covers, and a Report with the active
waivers applied. A waiver is keyed by the fingerprints of the findings it waived on the head
it was given on (`bot.report.fingerprint`: rule, location, message), so a new finding of the
same rule on a later push is not waived. The journal keeps every waiver (bot/store.py); only
`/compliance waive` comments from a permitted user create one, never the repository's files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from bot.model import Finding, Report, Waived
from bot.report import fingerprint

# Fingerprints one waiver may hold: past it, the command is refused (waive by location).
MAX_FINGERPRINTS = 1000
# Waivers of one MR the check reads; the oldest beyond it are not applied.
MAX_WAIVERS_PER_MR = 200


@dataclass(frozen=True)
class NewWaiver:
    project_id: int
    mr_iid: int
    rule: str
    location: str  # as the command gave it; "" for the whole rule
    fingerprints: tuple[str, ...]
    reason: str
    author: str
    created_at: float
    expires_at: float
    head_sha: str


@dataclass(frozen=True)
class Waiver(NewWaiver):
    """A waiver as the journal keeps it."""

    id: int = 0
    withdrawn_at: float | None = None
    withdrawn_by: str | None = None

    def active(self, now: float) -> bool:
        return self.withdrawn_at is None and now < self.expires_at


def finding_fingerprint(finding: Finding) -> str:
    return fingerprint(finding.rule, finding.location, finding.message)


def _commit_sha(location: str) -> str | None:
    if not location.startswith("commit "):
        return None
    return location[len("commit ") :].split(":", 1)[0]


def at_location(finding: Finding, location: str) -> bool:
    """Whether a finding is at `location`: a commit's sha (either a prefix of the other), or a
    path (the file itself, or a line of it)."""
    sha = _commit_sha(finding.location)
    if sha is not None and all(c in "0123456789abcdef" for c in location):
        return sha.startswith(location) or location.startswith(sha)
    return finding.location == location or finding.location.startswith(location + ":")


def findings_to_waive(report: Report, rule: str, location: str | None) -> list[Finding]:
    """The findings of `rule` on the report's head that a waiver would cover: those that
    count (not already on the target branch), at `location` when one is given."""
    return [
        f
        for f in report.findings
        if f.rule == rule and not f.already_on and (location is None or at_location(f, location))
    ]


def apply_waivers(report: Report, waivers: Iterable[Waiver], now: float) -> Report:
    """The report with every finding an active waiver covers marked `waived`. Of several
    waivers of one finding, the one that lasts longest is shown."""
    by_fingerprint: dict[tuple[str, str], Waiver] = {}
    for waiver in waivers:
        if not waiver.active(now):
            continue
        for key in waiver.fingerprints:
            known = by_fingerprint.get((waiver.rule, key))
            if known is None or waiver.expires_at > known.expires_at:
                by_fingerprint[(waiver.rule, key)] = waiver
    if not by_fingerprint or report.error is not None:
        return report

    def marked(finding: Finding) -> Finding:
        waiver = by_fingerprint.get((finding.rule, finding_fingerprint(finding)))
        if waiver is None:
            return finding
        return replace(
            finding, waived=Waived(by=waiver.author, reason=waiver.reason, until=waiver.expires_at)
        )

    return replace(
        report,
        outcomes=tuple(
            replace(outcome, findings=tuple(marked(f) for f in outcome.findings))
            for outcome in report.outcomes
        ),
    )
