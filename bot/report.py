"""Rendering a Report: the MR note's Markdown and the commit status description. No I/O."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


# -- the command line's formats: text, rich, JSON, JUnit XML, Code Quality ----------------
#
# `compliance-bot check` renders the same Report the server turns into a note, plus what the
# check could not judge where it ran (NotJudged): offline, nothing tells the project's topics
# or the MR's title, and such rules are listed as not judged, never as passed.


@dataclass(frozen=True)
class NotJudged:
    """A rule a check could not judge where it ran, or judged on part of its input only.

    `partial`: the rule ran and its outcome stands, but `reason` names what it could not see.
    """

    rule: str
    title: str
    reason: str
    partial: bool = False


def failing(fail_on: Severity) -> frozenset[Severity]:
    """The severities that fail a check run with `--fail-on` (errors always do)."""
    if fail_on is Severity.WARNING:
        return frozenset({Severity.ERROR, Severity.WARNING})
    return frozenset({Severity.ERROR})


def summary_line(report: Report) -> str:
    """`Compliance: 2 errors, 1 warning`, as the note's heading says it, without Markdown."""
    if report.error is not None:
        return f"Compliance check could not complete: {report.error}"
    if report.error_count:
        errors = _plural(report.error_count, "error")
        return f"Compliance: {errors}, {_plural(report.warning_count, 'warning')}"
    if report.warning_count:
        return f"Compliance: passed with {_plural(report.warning_count, 'warning')}"
    return "Compliance: all checks passed"


def _scope_line(report: Report) -> str:
    scope = [report.head_sha[:8]]
    if "commits" in report.facts:
        scope.append(_plural(report.facts["commits"], "commit"))
    if "files" in report.facts:
        scope.append(_plural(report.facts["files"], "changed file"))
    return (
        f"Checked {', '.join(scope)} against {_plural(len(report.outcomes), 'rule')}; "
        f"rules from {report.config_source}."
    )


def _indented(text: str, prefix: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\n" + prefix)


def render_text(report: Report, *, not_judged: Sequence[NotJudged] = ()) -> str:
    """Plain text for a log or a pipe: the verdict, each finding with its fix, what was not
    judged, and what passed."""
    lines = [summary_line(report)]
    if report.error is not None:
        lines += [f"  {d}" for d in report.details]
        return _printable("\n".join(lines) + "\n")
    lines += [_scope_line(report), ""]
    pad = " " * 9
    for severity, _ in _SECTIONS:
        for finding in (f for f in report.findings if f.severity is severity):
            where = f"  {finding.location}" if finding.location else ""
            lines.append(f"{severity.value:<8} {finding.rule}{_indented(where, pad)}")
            lines.append(pad + _indented(finding.message, pad))
            if finding.fix:
                lines.append(pad + "fix: " + _indented(finding.fix, pad))
            lines.append("")
    if not_judged:
        lines.append(f"Not judged here ({len(not_judged)}):")
        for item in not_judged:
            part = " (in part)" if item.partial else ""
            lines.append(f"  {item.rule}{part}: {_indented(item.reason, '    ')}")
        lines.append("")
    passed = [o.rule for o in report.outcomes if o.passed]
    if passed:
        lines.append(f"Passed ({len(passed)}): {', '.join(passed)}")
    return _printable("\n".join(lines).rstrip("\n") + "\n")


# Control characters (an escape sequence in a commit title) would restyle or rewrite a
# terminal or a CI job log, which renders ANSI codes; newlines and tabs stay.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    return _CONTROL.sub("\ufffd", text)


def render_rich(report: Report, *, not_judged: Sequence[NotJudged] = ()) -> Any:
    """render_text's content as `rich` renderables for a terminal: the same blocks, in
    colour. User text (messages, commit titles) goes in as `Text`, never as markup, so it
    cannot restyle the output."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    style = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "blue"}
    if report.error is not None:
        return Group(
            Text(summary_line(report), style="bold red"),
            *(Padding(Text(d), (0, 0, 0, 2)) for d in report.details),
        )
    heading_style = "bold red" if report.error_count else "bold green"
    parts: list[Any] = [
        Text(summary_line(report), style=heading_style),
        Text(_scope_line(report), style="dim"),
        Text(""),
    ]
    for severity, _ in _SECTIONS:
        for finding in (f for f in report.findings if f.severity is severity):
            parts.append(
                Text.assemble(
                    (f"{severity.value:<8} ", style[severity]),
                    (finding.rule, "bold"),
                    (f"  {finding.location}" if finding.location else "", "cyan"),
                )
            )
            body = Text(finding.message)
            if finding.fix:
                body.append("\nfix: " + finding.fix, style="dim")
            parts += [Padding(body, (0, 0, 1, 9))]
    if not_judged:
        parts.append(Text(f"Not judged here ({len(not_judged)}):", style="bold"))
        for item in not_judged:
            line = Text.assemble(
                ("  " + item.rule, "bold"), (" (in part)" if item.partial else "", "bold")
            )
            line.append(": " + item.reason, style="dim")
            parts.append(line)
        parts.append(Text(""))
    passed = [o.rule for o in report.outcomes if o.passed]
    if passed:
        parts.append(Text(f"Passed ({len(passed)}): {', '.join(passed)}", style="green"))
    return Group(*parts)


JSON_FORMAT_VERSION = 1


def render_json(
    report: Report,
    *,
    not_judged: Sequence[NotJudged] = (),
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A stable JSON document for scripts: the verdict, every rule's outcome and finding."""
    skipped = {item.rule for item in not_judged if not item.partial}
    document: dict[str, Any] = {
        "version": JSON_FORMAT_VERSION,
        "head_sha": report.head_sha,
        **dict(extra or {}),
        "config_source": report.config_source,
        "passed": report.passed,
        "summary": summary_line(report),
        "error": report.error,
        "details": list(report.details),
        "counts": {
            severity.value: sum(1 for f in report.findings if f.severity is severity)
            for severity in Severity
        },
        "facts": dict(report.facts),
        "rules": [
            {
                "rule": o.rule,
                "title": o.title,
                "status": "passed" if o.passed else "failed",
                "findings": len(o.findings),
            }
            for o in report.outcomes
        ]
        + [
            {"rule": item.rule, "title": item.title, "status": "not_judged", "findings": 0}
            for item in not_judged
            if item.rule in skipped
        ],
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "location": f.location,
                "message": f.message,
                "fix": f.fix,
            }
            for f in report.findings
        ],
        "not_judged": [
            {"rule": i.rule, "title": i.title, "reason": i.reason, "partial": i.partial}
            for i in not_judged
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# XML 1.0 allows no control characters but tab, newline and carriage return; a commit message
# may hold any of them, and one such byte would make GitLab reject the whole report.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _finding_text(finding: Finding) -> str:
    lines = [
        f"[{finding.severity.value}] {finding.location}: {finding.message}".replace("] : ", "] ")
    ]
    if finding.fix:
        lines.append(f"  fix: {finding.fix}")
    return "\n".join(lines)


JUNIT_SUITE = "compliance-bot"


def render_junit(
    report: Report,
    *,
    not_judged: Sequence[NotJudged] = (),
    fail_on: Severity = Severity.ERROR,
) -> str:
    """JUnit XML as GitLab reads it (https://docs.gitlab.com/ci/testing/unit_test_reports/).

    One testsuite; one testcase per rule, named by the rule id (GitLab pairs tests across
    branches by name, and keeps only the first of equal names), with `classname` the suite
    name GitLab shows. A rule with findings that fail the run (errors, and warnings under
    `--fail-on warning`) has a `<failure>` holding them; other findings and caveats go in
    `<system-out>` of a passed test, as a warning does not fail the pipeline. GitLab's parser
    keeps no output of a passed test (gitlabhq: lib/gitlab/ci/parsers/test/junit.rb sets
    `system_output = nil` unless the case has a failure, error or skipped element), so those
    findings are repeated in a `<skipped>` test of their own, `<rule> (warnings)`, which GitLab
    shows with its text. A rule that could not be judged is `<skipped>` with the reason. A
    check that could not complete (an invalid config) is one test with an `<error>`.
    """
    import xml.etree.ElementTree as ET

    fails = failing(fail_on)
    suite = ET.Element("testsuite", name=JUNIT_SUITE)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(name: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=JUNIT_SUITE, name=name, time="0")

    if report.error is not None:
        element = ET.SubElement(
            case("compliance-bot"), "error", message=_xml_text(summary_line(report))
        )
        element.text = _xml_text("\n".join([summary_line(report), *report.details]))
        counts["errors"] += 1
    caveats = {item.rule: item.reason for item in not_judged if item.partial}
    for outcome in report.outcomes:
        testcase = case(outcome.rule)
        failed = [f for f in outcome.findings if f.severity in fails]
        other = [f for f in outcome.findings if f.severity not in fails]
        if failed:
            failure = ET.SubElement(
                testcase,
                "failure",
                message=_xml_text(f"{outcome.title}: {_plural(len(failed), 'finding')}"),
                type=failed[0].severity.value,
            )
            failure.text = _xml_text("\n".join(_finding_text(f) for f in failed))
            counts["failures"] += 1
        out = [_finding_text(f) for f in other]
        if outcome.rule in caveats:
            out.append(f"not judged in part: {caveats[outcome.rule]}")
        if out:
            ET.SubElement(testcase, "system-out").text = _xml_text("\n".join(out))
            shown = ET.SubElement(
                case(f"{outcome.rule} (warnings)"),
                "skipped",
                message=_xml_text(f"{outcome.title}: passes, with {_plural(len(out), 'note')}"),
            )
            shown.text = _xml_text("\n".join(out))
            counts["skipped"] += 1
    for item in not_judged:
        if item.partial:
            continue
        skipped = ET.SubElement(case(item.rule), "skipped", message=_xml_text(item.reason))
        skipped.text = _xml_text(item.reason)
        counts["skipped"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    root = ET.Element("testsuites", {"name": JUNIT_SUITE, **{k: str(v) for k, v in counts.items()}})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# Code Quality severities: info, minor, major, critical, blocker.
# https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
CODEQUALITY_SEVERITY = {
    Severity.ERROR: "major",
    Severity.WARNING: "minor",
    Severity.INFO: "info",
}
# An invalid config's problems without a line point at the config file: GitLab needs a path
# for every entry.
DEFAULT_CONFIG_PATH = ".gitlab/compliance.yml"
_PATH_AND_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")
_CONFIG_PROBLEM = re.compile(r"^(?P<path>.+?):(?P<line>\d+):\d+: ")


def fingerprint(rule: str, location: str, message: str) -> str:
    """Stable across runs: the same finding of the same rule at the same place."""
    return hashlib.sha256(f"{rule}\0{location}\0{message}".encode()).hexdigest()


def render_codequality(report: Report, *, known_paths: Collection[str] = frozenset()) -> str:
    """A Code Quality report: one JSON array, an object per finding, with exactly the fields
    GitLab reads (https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format).

    Only findings located in a file the check saw (`known_paths`, or `file:line`) are
    entries, and an invalid config, at its line. GitLab's widget compares an MR's report
    with the target branch's and calls a finding "resolved" when it is gone: a finding about
    a commit message or the MR's title would be "resolved" by the next MR, which fixed
    nothing. Those are in the JUnit report and the note.
    """
    config_path = (
        report.config_source
        if report.config_source not in ("defaults", "instance defaults")
        else DEFAULT_CONFIG_PATH
    )
    entries: list[dict[str, Any]] = []

    def entry(check: str, severity: str, description: str, path: str, line: int, key: str) -> None:
        entries.append(
            {
                "description": description,
                "check_name": check,
                "fingerprint": key,
                "severity": severity,
                "location": {"path": path, "lines": {"begin": line}},
            }
        )

    if report.error is not None:
        for detail in report.details or (report.error,):
            match = _CONFIG_PROBLEM.match(detail)
            path, line = (match["path"], int(match["line"])) if match else (config_path, 1)
            description = f"{report.error}: {detail}"
            key = fingerprint("compliance-bot", "", description)
            entry("compliance-bot", "critical", description, path, line, key)
    for finding in report.findings:
        location = finding.location
        match = _PATH_AND_LINE.match(location)
        if location in known_paths:
            path, line, description = location, 1, finding.message
        elif match and match["path"] in known_paths:
            path, line, description = match["path"], int(match["line"]), finding.message
        else:
            continue
        severity = CODEQUALITY_SEVERITY[finding.severity]
        key = fingerprint(finding.rule, location, finding.message)
        entry(finding.rule, severity, description, path, line, key)
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
