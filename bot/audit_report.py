"""The audit's reports: JSON, CSV, Markdown, the plain table and rich's, as pure functions of
an `AuditResult` (the HTML report is bot/audit_html.py); beside the note's and the CI
reports' renderers in bot/report.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, TextIO

from bot.audit_model import OUTCOMES, AuditResult, Row, Status


def counts(rows: Sequence[Row]) -> dict[str, int]:
    """How many rows have each outcome (`non-compliant` keyed `non_compliant`)."""
    tally = {"total": len(rows)} | {s.value.replace("-", "_"): 0 for s in OUTCOMES}
    for row in rows:
        tally[row.status.value.replace("-", "_")] += 1
    return tally


def checks_failed(rows: Sequence[Row]) -> dict[str, int]:
    """How many rows lack each check, most first (then by name)."""
    tally: dict[str, int] = {}
    for row in rows:
        for check in row.checks:
            tally[check] = tally.get(check, 0) + 1
    return dict(sorted(tally.items(), key=lambda item: (-item[1], item[0])))


def summary_lines(result: AuditResult) -> list[str]:
    lines = []
    sections = [("Projects", result.projects)]
    if result.members is not None:
        sections.append(("Members", result.members))
    for title, rows in sections:
        c = counts(rows)
        errors = f"{c['error']} error" + ("" if c["error"] == 1 else "s")
        lines.append(
            f"{title}: {c['total']} checked: {c['compliant']} compliant, "
            f"{c['warnings']} with warnings, {c['non_compliant']} non-compliant, {errors}"
        )
    if result.comparison is not None:
        lines.append(result.comparison.summary_line())
    lines += [f"error: {e}" for e in result.errors]
    return lines


def shown(result: AuditResult, rows: Sequence[Row] | None, only_failing: bool) -> list[Row]:
    return [r for r in rows or () if not only_failing or r.fails(result.fail_on)]


def change_of(result: AuditResult, row: Row) -> str:
    """`better`, `worse` or `new` since the compared run; "" when unchanged or not compared."""
    if result.comparison is None:
        return ""
    change = result.comparison.by_row.get((row.kind, row.id))
    return change.direction if change else ""


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "web_url": row.web_url,
        "status": str(row.status),
        "errors": row.errors,
        "warnings": row.warnings,
        "checks": list(row.checks),
        "reason": row.reason or None,
        "details": list(row.details),
        "config": row.config_source or None,
        "findings": [
            {
                "rule": f.rule,
                "severity": str(f.severity),
                "message": f.message,
                "fix": f.fix,
                "location": f.location or None,
            }
            for f in row.findings
        ],
    }


def _comparison_json(result: AuditResult) -> dict[str, Any] | None:
    comparison = result.comparison
    if comparison is None:
        return None
    return {
        "source": comparison.source,
        "previous_finished_at": comparison.previous_at,
        "previous_summary": comparison.previous_counts,
        "changes": [
            {
                "kind": c.kind,
                "id": c.id,
                "name": c.name,
                "change": c.direction,
                "before": None if c.before is None else str(c.before),
                "after": None if c.after is None else str(c.after),
                "fixed": list(c.fixed),
                "now_lacking": list(c.lacking),
            }
            for c in comparison.changes
        ],
    }


def render_json(result: AuditResult, *, only_failing: bool = False) -> str:
    """The report as JSON; with every row (not `only_failing`) it is also what --save keeps."""
    from bot.audit_history import FORMAT, VERSION

    summary: dict[str, Any] = {
        "projects": counts(result.projects),
        "members": None if result.members is None else counts(result.members),
        "checks": checks_failed(result.projects),
    }
    document = {
        "format": FORMAT,
        "version": VERSION,
        "complete": not only_failing,
        "group": result.group,
        "finished_at": result.finished_at,
        "fail_on": str(result.fail_on),
        "exit_code": result.exit_code(),
        "summary": summary,
        "errors": result.errors,
        "comparison": _comparison_json(result),
        "projects": [_row_json(r) for r in shown(result, result.projects, only_failing)],
        "members": None
        if result.members is None
        else [_row_json(r) for r in shown(result, result.members, only_failing)],
    }
    return json.dumps(document, indent=2)


def render_csv(result: AuditResult, *, only_failing: bool = False) -> str:
    """One row per project and member; the summary goes to stderr, keeping this parseable."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["kind", "name", "status", "errors", "warnings", "details", "web_url", "checks"]
    if result.comparison is not None:
        header.append("since_last_run")
    writer.writerow(header)
    for row in shown(result, result.rows(), only_failing):
        values: list[Any] = [row.kind, row.name, row.status, row.errors, row.warnings]
        values += [row.summary(), row.web_url, "; ".join(row.checks)]
        if result.comparison is not None:
            values.append(change_of(result, row))
        writer.writerow(values)
    return out.getvalue()


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _changes_lines(result: AuditResult, *, markdown: bool) -> list[str]:
    """The rows that changed since the compared run, worst news first."""
    from bot.audit_history import DIRECTIONS

    comparison = result.comparison
    if comparison is None:
        return []
    lines = [
        ("## " if markdown else "")
        + f"Since the last run ({comparison.previous_at or 'unknown time'}, {comparison.source})"
    ]
    if markdown:
        lines.append("")
    for direction in DIRECTIONS:
        for change in comparison.of(direction):
            name = _md(change.name) if markdown else change.name
            text = _md(change.describe()) if markdown else change.describe()
            lines.append(f"- {direction}: {change.kind} {name}: {text}")
    if not comparison.changes:
        lines.append("- nothing changed")
    return [*lines, ""]


def render_markdown(result: AuditResult, *, only_failing: bool = False) -> str:
    lines = [f"# Compliance audit of `{_md(result.group)}`", ""]
    sections = [("Project", result.projects)]
    if result.members is not None:
        sections.append(("Member", result.members))
    for title, rows in sections:
        listed = shown(result, rows, only_failing)
        lines += [
            f"| {title} | Status | Errors | Warnings | Details |",
            "| --- | --- | --: | --: | --- |",
        ]
        for row in listed:
            name = f"[{_md(row.name)}]({row.web_url})" if row.web_url else _md(row.name)
            lines.append(
                f"| {name} | {row.status} | {row.errors} | {row.warnings} | {_md(row.summary())} |"
            )
        if not listed:
            lines.append("| (none) | | | | |")
        lines.append("")
    lines += _changes_lines(result, markdown=True)
    lines += [f"- {_md(line)}" for line in summary_lines(result)]
    return "\n".join(lines) + "\n"


def render_text(result: AuditResult, *, only_failing: bool = False) -> str:
    """A plain aligned table: what `table` prints when stdout is not a terminal."""
    lines: list[str] = []
    sections = [("PROJECT", result.projects)]
    if result.members is not None:
        sections.append(("MEMBER", result.members))
    for title, rows in sections:
        listed = shown(result, rows, only_failing)
        width = max([len(title), *(len(r.name) for r in listed)])
        lines.append(f"{title:<{width}}  {'STATUS':<13}  {'ERRORS':>6}  {'WARNINGS':>8}  DETAILS")
        lines += [
            f"{r.name:<{width}}  {r.status:<13}  {r.errors:>6}  {r.warnings:>8}  {r.summary()}"
            for r in listed
        ]
        lines.append("")
    lines += _changes_lines(result, markdown=False)
    lines += summary_lines(result)
    return "\n".join(lines) + "\n"


_STATUS_STYLE = {
    Status.COMPLIANT: "green",
    Status.WARNINGS: "yellow",
    Status.NON_COMPLIANT: "red",
    Status.ERROR: "bold magenta",
}


def print_rich(result: AuditResult, stream: TextIO, *, only_failing: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream)
    sections = [("Project", result.projects)]
    if result.members is not None:
        sections.append(("Member", result.members))
    for title, rows in sections:
        table = Table(title=f"{title}s of {result.group}", title_justify="left")
        table.add_column(title, no_wrap=True)
        table.add_column("Status", no_wrap=True)
        table.add_column("Errors", justify="right")
        table.add_column("Warnings", justify="right")
        table.add_column("Details", overflow="fold")
        for row in shown(result, rows, only_failing):
            table.add_row(
                Text(row.name, style=f"link {row.web_url}" if row.web_url else ""),
                Text(str(row.status), style=_STATUS_STYLE[row.status]),
                str(row.errors),
                str(row.warnings),
                Text(row.summary()),
            )
        console.print(table)
    for line in _changes_lines(result, markdown=False):
        console.print(Text(line))
    for line in summary_lines(result):
        console.print(Text(line, style="bold red" if line.startswith("error:") else "bold"))


def render(result: AuditResult, fmt: str, *, only_failing: bool = False) -> str:
    """The report in `fmt` as text (`table`: the plain aligned table)."""
    if fmt == "json":
        return render_json(result, only_failing=only_failing) + "\n"
    if fmt == "csv":
        return render_csv(result, only_failing=only_failing)
    if fmt == "markdown":
        return render_markdown(result, only_failing=only_failing)
    if fmt == "html":
        from bot.audit_html import render_html

        return render_html(result, only_failing=only_failing)
    return render_text(result, only_failing=only_failing)


def write_report(
    result: AuditResult, fmt: str, out: TextIO, err: TextIO, *, only_failing: bool = False
) -> None:
    if fmt == "table" and out.isatty() and has_rich():
        print_rich(result, out, only_failing=only_failing)
    else:
        out.write(render(result, fmt, only_failing=only_failing))
    if fmt == "csv":
        # The counts go to stderr, so that stdout stays one CSV table.
        err.write("\n".join(summary_lines(result)) + "\n")
        return
    # What stopped a listing is in the report, and on stderr too, for whoever sent the
    # report to a file.
    for error in result.errors:
        err.write(f"compliance-bot: {error}\n")


def has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True
