"""Rendering a Report: the MR note's Markdown and the commit status description. No I/O."""

from __future__ import annotations

from bot import __version__
from bot.model import Finding, Report, Severity

# The hidden marker by which the bot finds its own note among an MR's notes.
NOTE_MARKER = "<!-- compliance-bot -->"

# GitLab rejects a commit status description longer than 255 characters.
# https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
STATUS_DESCRIPTION_LIMIT = 255

# Notes are capped at 1,000,000 characters; long before that a note stops being readable, so
# each rule lists a bounded number of findings.
# https://docs.gitlab.com/api/notes/#create-new-merge-request-note
MAX_FINDINGS_PER_RULE = 25

# Findings of one severity above this count start collapsed.
COLLAPSE_AFTER = 10

_SECTIONS = (
    (Severity.ERROR, "Needs fixing"),
    (Severity.WARNING, "Warnings"),
    (Severity.INFO, "For information"),
)

_ICON = {
    Severity.ERROR: ":x:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def status_state(report: Report) -> str:
    return "success" if report.passed else "failed"


def status_description(report: Report) -> str:
    if report.error is not None:
        text = f"could not complete: {report.error}"
    elif report.error_count:
        text = f"{_plural(report.error_count, 'error')}, {_plural(report.warning_count, 'warning')}"
    elif report.warning_count:
        text = f"passed with {_plural(report.warning_count, 'warning')}"
    else:
        text = f"all {len(report.outcomes)} checks passed"
    return truncate(text, STATUS_DESCRIPTION_LIMIT)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(text: str) -> str:
    """User-controlled text as a Markdown code span: no formatting, no @mentions, one line."""
    text = text.replace("`", "'").replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return f"`{text}`" if text else ""


def _cell(text: str) -> str:
    """Text for a table cell: one line, no column breaks, and no @mention that pings."""
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text.replace("@", "@\u200b")


def render_note(report: Report) -> str:
    """The MR note. Its text depends only on the report, so an unchanged verdict is an
    unchanged note, and the bot can skip the edit."""
    lines = [NOTE_MARKER]
    short = report.head_sha[:8]
    if report.error is not None:
        lines += [
            "### :x: Compliance check could not complete",
            "",
            f"The check of `{short}` could not complete, so it is marked failed: "
            f"{_cell(report.error)}",
            "",
        ]
        if report.details:
            shown = report.details[:MAX_FINDINGS_PER_RULE]
            lines += ["```", *(_cell(d) for d in shown)]
            if len(report.details) > len(shown):
                lines.append(f"…and {len(report.details) - len(shown)} more")
            lines += ["```", "", "Fix the file on the target branch; this MR cannot change it."]
        else:
            lines.append(
                "This is not a verdict on the change. Push again, or ask the bot's operator "
                "to look at GitLab's availability and the bot's logs."
            )
        return "\n".join([*lines, "", _footer(report)]) + "\n"

    if report.error_count:
        heading = (
            f"### :x: Compliance: {_plural(report.error_count, 'error')}, "
            f"{_plural(report.warning_count, 'warning')}"
        )
    elif report.warning_count:
        warnings = _plural(report.warning_count, "warning")
        heading = f"### :white_check_mark: Compliance: passed with {warnings}"
    else:
        heading = "### :white_check_mark: Compliance: all checks passed"
    scope = [f"`{short}`"]
    if "commits" in report.facts:
        scope.append(_plural(report.facts["commits"], "commit"))
    if "files" in report.facts:
        scope.append(_plural(report.facts["files"], "changed file"))
    lines += [heading, "", f"Checked {', '.join(scope)} against {len(report.outcomes)} rules.", ""]

    for severity, title in _SECTIONS:
        findings = [f for f in report.findings if f.severity is severity]
        if not findings:
            continue
        table = ["| | Rule | Where | Problem | How to fix |", "|---|---|---|---|---|"]
        for rule in dict.fromkeys(f.rule for f in findings):
            of_rule = [f for f in findings if f.rule == rule]
            table += [_row(f) for f in of_rule[:MAX_FINDINGS_PER_RULE]]
            hidden = len(of_rule) - MAX_FINDINGS_PER_RULE
            if hidden > 0:
                table.append(f"| | `{rule}` | | …and {hidden} more | |")
        heading = f"**{title}** ({len(findings)})"
        if len(findings) > COLLAPSE_AFTER:
            lines += [f"<details><summary>{heading}</summary>", "", *table, "", "</details>", ""]
        else:
            lines += [heading, "", *table, ""]
    passed = [o for o in report.outcomes if o.passed]
    if passed:
        lines += [f"<details><summary>Passed ({len(passed)})</summary>", ""]
        lines += [f"- :white_check_mark: {o.title} (`{o.rule}`)" for o in passed]
        lines += ["", "</details>", ""]
    return "\n".join([*lines, _footer(report)]) + "\n"


def _footer(report: Report) -> str:
    return f"<sub>Rules from {_code(report.config_source)} · compliance-bot {__version__}</sub>"


def _row(finding: Finding) -> str:
    return (
        f"| {_ICON[finding.severity]} | `{finding.rule}` | {_code(finding.location)} | "
        f"{_cell(finding.message)} | {_cell(finding.fix)} |"
    )
