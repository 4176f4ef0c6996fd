"""Merge request metadata: title and description.

These rules read only what a Merge Request Hook payload carries, so an MR edit that touches
only the title, description or labels is judged from the payload alone.
"""

from __future__ import annotations

import re

from bot.model import Finding, RuleOutcome, Severity

# GitLab treats these title prefixes as Draft markers.
# https://docs.gitlab.com/user/project/merge_requests/drafts/
_DRAFT_TITLE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s-\s)", re.IGNORECASE)


def is_draft_title(title: str) -> bool:
    return bool(_DRAFT_TITLE.match(title))


def not_draft(title: str, draft: bool) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if draft or is_draft_title(title):
        findings = (
            Finding(
                rule="merge_request.draft",
                severity=Severity.WARNING,
                message="the merge request is a draft",
                fix="Mark it as ready when the work is done.",
                location="title",
            ),
        )
    return RuleOutcome("merge_request.draft", "Not a draft", findings)


def description_present(description: str) -> RuleOutcome:
    findings: tuple[Finding, ...] = ()
    if not description.strip():
        findings = (
            Finding(
                rule="merge_request.description",
                severity=Severity.ERROR,
                message="the merge request has no description",
                fix="Describe what the change does and why.",
                location="description",
            ),
        )
    return RuleOutcome("merge_request.description", "Description present", findings)
