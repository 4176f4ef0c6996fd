from __future__ import annotations

from bot import report
from bot.model import Finding, Report, RuleOutcome, Severity

HEAD = "0123456789abcdef0123456789abcdef01234567"


def _report(*findings: Finding, error: str | None = None) -> Report:
    outcomes = (
        RuleOutcome("commit.conventional", "Conventional Commits", tuple(findings)),
        RuleOutcome("repository.description", "Project description"),
    )
    return Report(head_sha=HEAD, outcomes=outcomes, error=error, facts={"commits": 3})


def _finding(severity: Severity, location: str = "commit 01234567: Added stuff") -> Finding:
    return Finding("commit.conventional", severity, "type is empty", "Reword it.", location)


def test_passing_report() -> None:
    passed = _report()
    assert report.status_state(passed) == "success"
    assert report.status_description(passed) == "all 2 checks passed"
    note = report.render_note(passed)
    assert note.startswith(report.NOTE_MARKER)
    assert "all checks passed" in note and "`01234567`, 3 commits" in note


def test_warnings_pass_and_are_listed() -> None:
    warned = _report(_finding(Severity.WARNING))
    assert report.status_state(warned) == "success"
    assert report.status_description(warned) == "passed with 1 warning"
    assert ":warning: | `commit.conventional` | `commit 01234567: Added stuff`" in (
        report.render_note(warned)
    )


def test_errors_fail() -> None:
    failed = _report(_finding(Severity.ERROR), _finding(Severity.ERROR), _finding(Severity.WARNING))
    assert report.status_state(failed) == "failed"
    assert report.status_description(failed) == "2 errors, 1 warning"


def test_incomplete_check_is_failed_and_says_why() -> None:
    incomplete = _report(error="GitLab did not answer GET /projects/1/merge_requests/2/diffs")
    assert report.status_state(incomplete) == "failed"
    assert report.status_description(incomplete).startswith("could not complete: GitLab")
    assert "could not complete" in report.render_note(incomplete)
    assert "passed" not in report.render_note(incomplete)


def test_status_description_fits_gitlabs_limit() -> None:
    incomplete = _report(error="x" * 1000)
    assert len(report.status_description(incomplete)) == report.STATUS_DESCRIPTION_LIMIT


def test_user_text_cannot_break_the_table_or_mention_people() -> None:
    sneaky = _finding(Severity.ERROR, location="commit 01234567: ping @admin | `x`\nnext")
    note = report.render_note(_report(sneaky))
    row = next(line for line in note.splitlines() if "commit.conventional` |" in line)
    # Inside a code span GitLab renders no reference, so @admin is not pinged.
    assert "`commit 01234567: ping @admin \\| 'x' next`" in row
    assert row.count(" | ") == 4  # five cells, none split by the commit title


def test_findings_per_rule_are_bounded() -> None:
    many = [_finding(Severity.ERROR, f"commit {i:08d}: x") for i in range(100)]
    note = report.render_note(_report(*many))
    assert "…and 75 more" in note
    assert note.count(":x: | `commit.conventional`") == report.MAX_FINDINGS_PER_RULE
