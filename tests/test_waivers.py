"""Waivers, pure parts with literals, and their journal on both engines."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.commands import Command, Refused, Unwaive, Waive, parse, parse_waiver, waiver_expiry
from bot.model import Finding, Report, RuleOutcome, Severity
from bot.report import (
    render_codequality,
    render_junit,
    render_note,
    status_description,
    status_state,
)
from bot.stores import open_store
from bot.waivers import NewWaiver, Waiver, apply_waivers, finding_fingerprint, findings_to_waive
from tests.gfm import shown_text

RULES = {"commit.dco", "files.prohibited", "merge_request.description"}
DAY = 86400.0
NOW = datetime(2030, 1, 10, 12, tzinfo=UTC).timestamp()


# -- parsing ---------------------------------------------------------------------------------


def test_waive_and_unwaive_are_commands_with_arguments() -> None:
    assert parse("/compliance waive commit.dco legacy import") is Command.WAIVE
    assert parse("/compliance WAIVE") is Command.WAIVE
    assert parse("/compliance unwaive commit.dco") is Command.UNWAIVE
    assert parse("/compliance waiver") is Command.HELP
    assert parse("/compliance recheck now") is None  # as before: recheck takes nothing


def test_waive_is_parsed_strictly() -> None:
    def waive(text: str) -> Waive | Unwaive | Refused:
        return parse_waiver(text, RULES)

    assert waive("/compliance waive commit.dco Imported from SVN") == Waive(
        rule="commit.dco", reason="Imported from SVN"
    )
    assert waive("/compliance waive COMMIT.DCO 1a2b3c4d for 14d history\nof the import") == Waive(
        rule="commit.dco", reason="history of the import", location="1a2b3c4d", days=14
    )
    assert waive("/compliance waive files.prohibited test/fixtures/.env until 2030-02-01 x") == (
        Waive(
            rule="files.prohibited",
            reason="x",
            location="test/fixtures/.env",
            until=date(2030, 2, 1),
        )
    )
    assert waive("/compliance unwaive commit.dco") == Unwaive("commit.dco")
    refusals = {
        "/compliance waive": "name the rule",
        "/compliance waive commit.nope because": "unknown rule `commit.nope`",
        "/compliance waive commit.dco": "needs a reason",
        "/compliance waive commit.dco 1a2b3c4d": "needs a reason",
        "/compliance waive commit.dco for 14d": "needs a reason",
        "/compliance waive commit.dco for two weeks ok": "`for Nd`",
        "/compliance waive commit.dco for 0d ok": "at least 1 day",
        "/compliance waive commit.dco until 2030-02-30 ok": "`until YYYY-MM-DD`",
        "/compliance waive commit.dco until tomorrow ok": "`until YYYY-MM-DD`",
        "/compliance unwaive commit.dco please": "takes only the rule",
        "/compliance waive commit.dco " + "x" * 600: "longer than 500",
        "/compliance waive commit.dco " + "x " * 1500: "longer than 2000",
    }
    for text, reason in refusals.items():
        refused = waive(text)
        assert isinstance(refused, Refused) and reason in refused.reason, (text, refused)


def test_expiry_defaults_and_caps() -> None:
    plain = Waive(rule="commit.dco", reason="r")
    assert waiver_expiry(plain, now=NOW, default_days=30, max_days=90) == NOW + 30 * DAY
    assert waiver_expiry(
        Waive(rule="commit.dco", reason="r", days=3), now=NOW, default_days=30, max_days=90
    ) == (NOW + 3 * DAY)
    until = Waive(rule="commit.dco", reason="r", until=date(2030, 1, 10))
    # Through the end of that day, UTC.
    end = datetime(2030, 1, 11, tzinfo=UTC).timestamp()
    assert waiver_expiry(until, now=NOW, default_days=30, max_days=90) == end
    past = Waive(rule="commit.dco", reason="r", until=date(2030, 1, 9))
    assert waiver_expiry(past, now=NOW, default_days=30, max_days=90) == Refused(
        "2030-01-09 is in the past"
    )
    long = Waive(rule="commit.dco", reason="r", days=91)
    assert waiver_expiry(long, now=NOW, default_days=30, max_days=90) == Refused(
        "a waiver lasts at most 90 days here"
    )


# -- applying --------------------------------------------------------------------------------

DCO_A = Finding("commit.dco", Severity.ERROR, "no Signed-off-by", location="commit 1a2b3c4d: x")
DCO_B = Finding("commit.dco", Severity.ERROR, "no Signed-off-by", location="commit 9f8e7d6c: y")
ENV = Finding("files.prohibited", Severity.ERROR, "`.env` is prohibited", location=".env")


def _report(*findings: Finding) -> Report:
    rules = dict.fromkeys(f.rule for f in findings)
    return Report(
        head_sha="c" * 40,
        outcomes=tuple(
            RuleOutcome(rule, rule.title(), tuple(f for f in findings if f.rule == rule))
            for rule in rules
        ),
    )


def _waiver(*findings: Finding, expires_at: float = NOW + DAY, **values: object) -> Waiver:
    fields: dict[str, object] = {
        "project_id": 1,
        "mr_iid": 1,
        "rule": findings[0].rule,
        "location": "",
        "fingerprints": tuple(finding_fingerprint(f) for f in findings),
        "reason": "Imported <b>history</b> @team",
        "author": "maria",
        "created_at": NOW,
        "expires_at": expires_at,
        "head_sha": "c" * 40,
    }
    fields.update(values)
    return Waiver(**fields)  # type: ignore[arg-type]


def test_findings_to_waive_by_rule_and_location() -> None:
    report = _report(DCO_A, DCO_B, ENV)
    assert findings_to_waive(report, "commit.dco", None) == [DCO_A, DCO_B]
    assert findings_to_waive(report, "commit.dco", "9f8e7d6") == [DCO_B]
    assert findings_to_waive(report, "commit.dco", "9f8e7d6c0ffee") == [DCO_B]
    assert findings_to_waive(report, "files.prohibited", ".env") == [ENV]
    assert findings_to_waive(report, "files.prohibited", "src") == []
    assert findings_to_waive(report, "merge_request.description", None) == []


def test_a_waived_finding_does_not_count_and_is_shown_apart() -> None:
    report = apply_waivers(_report(DCO_A, ENV), [_waiver(ENV)], NOW)
    assert report.error_count == 1 and status_state(report) == "failed"
    assert status_description(report) == "1 error, 0 warnings, 1 waived"

    only_waived = apply_waivers(_report(ENV), [_waiver(ENV)], NOW)
    assert only_waived.passed and status_state(only_waived) == "success"
    assert status_description(only_waived) == "0 errors, 1 waived"
    note = shown_text(render_note(only_waived))
    assert "Waived: 1" in note
    assert "by @maria until 2030-01-11 12:00 UTC" in note
    # The reason is the maintainer's text: shown as written, never as markup.
    assert "Imported <b>history</b> @team" in note

    junit = render_junit(only_waived)
    assert '<skipped message="waived by @maria until 2030-01-11 12:00 UTC: Imported' in junit
    assert "<failure" not in junit
    assert render_codequality(only_waived, known_paths={".env"}) == "[]\n"


def test_a_new_finding_expiry_and_withdrawal_are_not_waived() -> None:
    waiver = _waiver(DCO_A)
    report = apply_waivers(_report(DCO_A, DCO_B), [waiver], NOW)
    assert [f.waived is not None for f in report.findings] == [True, False]
    expired = apply_waivers(_report(DCO_A), [waiver], NOW + 2 * DAY)
    assert expired.error_count == 1 and not expired.waived
    withdrawn = _waiver(DCO_A, withdrawn_at=NOW - 1, withdrawn_by="maria")
    assert apply_waivers(_report(DCO_A), [withdrawn], NOW).error_count == 1
    # A waiver of another rule with the same fingerprint text waives nothing here.
    other = _waiver(DCO_A, rule="files.prohibited")
    assert apply_waivers(_report(DCO_A), [other], NOW).error_count == 1


# -- the journal, on SQLite and PostgreSQL -------------------------------------------------


def _new(project_id: int, mr_iid: int, rule: str, expires_at: float) -> NewWaiver:
    return NewWaiver(
        project_id=project_id,
        mr_iid=mr_iid,
        rule=rule,
        location="",
        fingerprints=("f1", "f2"),
        reason="legacy",
        author="maria",
        created_at=NOW,
        expires_at=expires_at,
        head_sha="c" * 40,
    )


async def test_the_journal_keeps_the_trail(journal: str) -> None:
    async with open_store(journal, lease_seconds=0.5) as store:
        first = await store.add_waiver(_new(1, 1, "commit.dco", NOW + DAY))
        await store.add_waiver(_new(1, 1, "files.prohibited", NOW + 2 * DAY))
        await store.add_waiver(_new(1, 2, "commit.dco", NOW + 3 * DAY))
        await store.add_waiver(_new(2, 1, "commit.dco", NOW + DAY))
        mine = await store.waivers_of(1, 1)
        assert (mine[0].id, mine[0].rule, mine[0].fingerprints) == (
            first,
            "commit.dco",
            ("f1", "f2"),
        )
        assert len(mine) == 2 and all(w.active(NOW) for w in mine)

        assert await store.withdraw_waivers(1, 1, "commit.dco", by="olga", now=NOW + 1) == 1
        assert [w.rule for w in await store.waivers_of(1, 1)] == ["files.prohibited"]
        assert await store.withdraw_waivers(1, 1, "commit.dco", by="olga", now=NOW + 2) == 0

        # Expiries are handed out per MR, until the MR's re-check is queued.
        assert await store.expired_waivers(now=NOW, limit=10) == []
        later = NOW + 2.5 * DAY
        assert sorted(await store.expired_waivers(now=later, limit=10)) == [(1, 1), (2, 1)]
        await store.mark_expiry_handled(2, 1, now=later)
        assert await store.expired_waivers(now=later, limit=10) == [(1, 1)]

        trail = await store.list_waivers([1, 2], limit=100)
        assert len(trail) == 4
        withdrawn = next(w for w in trail if w.withdrawn_by)
        assert (withdrawn.withdrawn_by, withdrawn.withdrawn_at) == ("olga", NOW + 1)
        assert [w.project_id for w in await store.list_waivers([2], limit=100)] == [2]

        await store.prune_waivers(ended_before=NOW + 1.5 * DAY)
        assert len(await store.list_waivers([1, 2], limit=100)) == 2
