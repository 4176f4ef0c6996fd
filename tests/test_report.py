from __future__ import annotations

import json
import re

import pytest

from bot import report
from bot.model import Finding, Report, RuleOutcome, Severity
from tests import gfm

HEAD = "0123456789abcdef0123456789abcdef01234567"
PROJECT = "https://gitlab.example.com/acme/widget"
LINKS = report.Links.for_merge_request(f"{PROJECT}/-/merge_requests/7")


def _report(*findings: Finding, error: str | None = None) -> Report:
    outcomes = (
        RuleOutcome("commit.conventional", "Conventional Commits", tuple(findings)),
        RuleOutcome("repository.description", "Project description"),
    )
    return Report(head_sha=HEAD, outcomes=outcomes, error=error, facts={"commits": 3})


def _finding(severity: Severity, location: str = "commit 01234567: Added stuff") -> Finding:
    return Finding("commit.conventional", severity, "type is empty", "Reword it.", location)


def _before_details(note: str) -> str:
    return note.split("<details>", 1)[0]


def test_passing_report() -> None:
    passed = _report()
    assert report.status_state(passed) == "success"
    assert report.status_description(passed) == "all 2 checks passed"
    note = report.render_note(passed)
    assert note.startswith(report.NOTE_MARKER)
    assert "all checks passed" in note and "`01234567`, 3 commits" in note


def test_warnings_pass_and_are_listed_collapsed_after_the_summary() -> None:
    warned = _report(_finding(Severity.WARNING))
    assert report.status_state(warned) == "success"
    assert report.status_description(warned) == "passed with 1 warning"
    note = report.render_note(warned)
    row = "| :warning: | Conventional Commits `commit.conventional` | 1 | `01234567` |"
    assert row in _before_details(note)
    assert "<details><summary>Warnings: 1 in 1 rule</summary>" in note


def test_errors_fail() -> None:
    failed = _report(_finding(Severity.ERROR), _finding(Severity.ERROR), _finding(Severity.WARNING))
    assert report.status_state(failed) == "failed"
    assert report.status_description(failed) == "2 errors, 1 warning"


def test_errors_are_never_collapsed_and_each_hint_appears_once() -> None:
    many = [_finding(Severity.ERROR, f"commit {i:08x}: Added stuff") for i in range(27)]
    note = report.render_note(_report(*many), LINKS)
    visible = _before_details(note)
    assert "#### :x: Conventional Commits `commit.conventional` · 27 findings" in visible
    assert visible.count("- [`") == report.MAX_FINDINGS_PER_RULE
    assert note.count("Reword it") == 1
    # The summary names the first locations, linked, and how many more.
    row = next(line for line in note.splitlines() if line.startswith("| :x: |"))
    assert f"[`00000000`]({PROJECT}/-/commit/00000000)" in row
    assert row.endswith("+24 more |")
    assert "…and" not in note and "- … and 7 more" in note
    assert "compliance-bot check" in note and "JUnit report" in note


def test_hints_that_differ_only_by_the_commit_are_one_hint() -> None:
    findings = [
        Finding("commit.conventional", Severity.ERROR, "bad", f"`git rebase -i {sha}~`", loc)
        for sha, loc in (("0123abcd", "commit 0123abcd: a"), ("4567ef01", "commit 4567ef01: b"))
    ]
    note = report.render_note(_report(*findings))
    assert note.count("git rebase -i") == 1
    assert "`git rebase -i 0123abcd~`" in note  # the oldest commit's stands for all


def test_file_locations_link_to_the_line_at_the_head_commit() -> None:
    finding = Finding("files.secrets", Severity.ERROR, "a token", "Remove it.", "src/a b#c.py:12")
    outcomes = (RuleOutcome("files.secrets", "Secrets", (finding,)),)
    note = report.render_note(Report(HEAD, outcomes), LINKS)
    url = f"{PROJECT}/-/blob/{HEAD}/src/a%20b%23c.py#L12"
    assert f"[`src/a b#c.py:12`]({url})" in note
    assert f"[`01234567`]({PROJECT}/-/commit/{HEAD})" in note  # the checked head


def test_incomplete_check_is_failed_and_says_why_and_when_it_retries() -> None:
    incomplete = Report(
        HEAD, error="GitLab did not answer GET /projects/1/merge_requests/2/diffs", retryable=True
    )
    assert report.status_state(incomplete) == "failed"
    description = report.status_description(incomplete)
    assert description.startswith("could not complete: GitLab")
    assert description.endswith(
        "; the bot retries by itself; comment /compliance recheck to retry now"
    )
    note = report.render_note(incomplete)
    assert "could not complete" in note and "passed" not in note
    assert "The bot retries by itself; comment `/compliance recheck` to retry now." in note
    assert "Push again" not in note


def test_an_html_error_page_becomes_its_status_and_reason() -> None:
    page = (
        "GitLab answered 502 <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>"
        "\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center> to GET /x"
    )
    assert report.summarize_error(page) == "GitLab answered 502 Bad Gateway to GET /x"
    incomplete = Report(HEAD, error=page, retryable=True)
    description = report.status_description(incomplete)
    assert "<" not in description and "\r" not in description and "\n" not in description
    html = gfm.render(report.render_note(incomplete))
    assert "<h1>" not in html and "<center>" not in html and "502 Bad Gateway" in html


def test_an_invalid_config_lists_its_problems_without_blaming_defaults() -> None:
    broken = Report(
        HEAD,
        error="invalid .gitlab/compliance.yml",
        details=(".gitlab/compliance.yml:3:5: rules.x: unknown key 'x' (not a rule id)",),
    )
    note = report.render_note(broken)
    assert "- `.gitlab/compliance.yml:3:5: rules.x: unknown key 'x' (not a rule id)`" in note
    assert "Rules from" not in note
    assert "`/compliance recheck`" in note
    assert report.status_description(broken) == (
        "could not complete: invalid .gitlab/compliance.yml (1 problem); "
        "fix it on the target branch"
    )


def test_status_description_fits_gitlabs_limit() -> None:
    for retryable in (True, False):
        incomplete = Report(HEAD, error="x" * 1000, retryable=retryable)
        assert len(report.status_description(incomplete)) <= report.STATUS_DESCRIPTION_LIMIT
    assert len(report.incomplete_description("<p>" * 500)) <= report.STATUS_DESCRIPTION_LIMIT


def test_target_url_is_the_note_within_gitlabs_limit() -> None:
    assert report.target_url(LINKS, 42) == f"{PROJECT}/-/merge_requests/7#note_42"
    long_mr = f"{PROJECT}/{'g' * 195}/-/merge_requests/7"
    assert len(long_mr) + len("#note_42") > report.TARGET_URL_LIMIT
    assert report.target_url(report.Links.for_merge_request(long_mr), 42) == long_mr
    assert report.target_url(report.Links(), 42) is None


def test_findings_already_on_the_target_branch_do_not_fail() -> None:
    inherited = Finding(
        "repository.required_files",
        Severity.ERROR,
        "LICENSE is missing",
        "Add one.",
        "LICENSE",
        already_on="main",
    )
    outcomes = (RuleOutcome("repository.required_files", "Required files", (inherited,)),)
    checked = Report(HEAD, outcomes)
    assert checked.passed and report.status_state(checked) == "success"
    assert (
        report.status_description(checked) == "all 1 checks passed; 1 already on the target branch"
    )
    note = report.render_note(checked)
    assert "1 finding already on `main` are not this MR's doing" in note
    assert "<details><summary>Already on the target branch: 1</summary>" in note
    assert "| :x: |" not in note


def test_the_note_stays_under_the_cap_and_says_what_it_left_out() -> None:
    long_path = "d/" * 300 + "x.py"
    outcomes = tuple(
        RuleOutcome(
            f"files.rule_{i:02d}",
            f"Rule {i}",
            tuple(
                Finding(
                    f"files.rule_{i:02d}",
                    Severity.ERROR,
                    "m" * 2000,
                    f"fix {n} " * 200,
                    f"{long_path}:{n}",
                )
                for n in range(400)
            ),
        )
        for i in range(40)
    )
    note = report.render_note(Report(HEAD, outcomes), LINKS)
    assert len(note) < report.NOTE_LIMIT
    assert "not listed here: run `compliance-bot check` locally, or see the CI job's JUnit" in note
    assert note.rstrip().endswith("</sub>")


def test_the_hard_cap_cuts_at_a_line_and_says_so() -> None:
    capped = report._bounded("line\n" * 30_000)
    assert len(capped) < report.NOTE_LIMIT
    assert capped.endswith("see the CI job's JUnit report, for all of them._\n")


# -- escaping -----------------------------------------------------------------------------

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<h1>Big</h1> <b>bold</b>",
    "[x](https://evil.example)",
    "![i](https://evil.example/i.png)",
    "https://evil.example and www.evil.example",
    "#123 !45 @admin &7 %8 $9 ~bug ^alert#1",
    "<!-- hidden",
    "photo\u202egnp.exe",
    "a`b``c```d",
    "`leading",
    "*em* **strong** _u_ ~~s~~",
    "line\nbreak\r\n| cell | split |",
    ":smile: &amp; &#35;1",
    "\\#1 \\\\@admin",
    "you@example.com",
    "- [ ] task",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_text_only(text: str) -> None:
    markdown = report.escape(text)
    html = gfm.render(markdown)
    parsed = gfm.elements(markdown)
    assert [tag for tag, _ in parsed.elements] == ["p"], html
    assert parsed.comments == []
    shown = "".join(parsed.text).replace("\u200b", "").strip()
    assert shown == " ".join(re.sub(r"[\u202e]", "", text).split()).strip()
    assert gfm.bare_references(markdown) == []


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_code_is_one_code_span_of_exactly_the_text(text: str) -> None:
    for in_table in (False, True):
        markdown = report.escape(text, code=True, in_table=in_table)
        if in_table:
            markdown = f"| a |\n|---|\n| {markdown} |"
        spans = gfm.code_spans(markdown)
        assert len(spans) == 1, markdown
        expected = " ".join(text.replace("\u202e", "").splitlines()).replace("\r", " ")
        assert spans[0] == expected
        assert not any(c in spans[0] for c in gfm.ZERO_WIDTH + gfm.BIDI)
        parsed = gfm.elements(markdown)
        tags = {tag for tag, _ in parsed.elements}
        assert tags <= {"p", "code", "table", "thead", "tbody", "tr", "th", "td"}


def test_bidi_controls_are_removed_even_in_code() -> None:
    for character in gfm.BIDI:
        assert character not in report.escape(f"a{character}b")
        assert character not in report.escape(f"a{character}b", code=True)


def test_a_copied_command_has_no_zero_width_characters() -> None:
    fix = "Run `git config user.email you@example.com`, then push."
    finding = Finding("commit.author_email", Severity.ERROR, "bad email", fix, "commit 0123abcd: x")
    note = report.render_note(
        Report(HEAD, (RuleOutcome("commit.author_email", "Email", (finding,)),))
    )
    assert "git config user.email you@example.com" in gfm.code_spans(note)


def test_a_finding_already_on_the_target_branch_fails_no_report() -> None:
    inherited = Finding(
        "repository.required_files",
        Severity.ERROR,
        "LICENSE is missing",
        location="LICENSE",
        already_on="main",
    )
    result = Report(
        head_sha="c" * 40,
        outcomes=(RuleOutcome("repository.required_files", "Required files", (inherited,)),),
    )
    assert result.passed
    junit = report.render_junit(result)
    assert "<failure" not in junit
    assert "LICENSE is missing (already on main: not this change's doing)" in junit
    [finding] = json.loads(report.render_json(result))["findings"]
    assert finding["already_on"] == "main"
