"""Waivers in CI: `compliance-bot check` in a GitLab CI job applies the waivers the server
recorded in its own MR note, and only those.

The same repository state is built as a real git repository (for `check`, run as a process
with CI's predefined variables pointing at the fake GitLab) and in the fake GitLab (for the
server, which takes the `/compliance waive` comment over HTTP). The finding waived is about a
file, so its fingerprint (rule, location, message) is the same on both sides.
"""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bot.model import Finding, Report, RuleOutcome, Severity, Waived
from bot.report import NOTE_MARKER, read_waiver_record, render_note, waiver_record
from tests.conftest import Bot, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.git_repos import AUTHOR, HYGIENE_FILES, Repo, make_repo, mr_pipeline_env, run_cli_async
from tests.payloads import note_hook
from tests.scenarios import hook_for

RULES = "version: 1\nrules:\n  files.prohibited: {severity: error}\n"
BASE_FILES: dict[str, str | None] = {
    **{k: v for k, v in HYGIENE_FILES.items() if isinstance(v, str)},
    ".gitlab/compliance.yml": RULES,
}
SUBJECT = "test: add a fixture\n\nSigned-off-by: Ada Lovelace <ada@example.com>"
FIXTURE = {".env": "PLACEHOLDER=1\n", "CHANGELOG.md": "- a fixture\n"}
REASON = "Test fixture <b>holds no secret</b>"


def _git_state(root: Path) -> Repo:
    repo = make_repo(root)
    repo.commit("chore: initial commit", dict(BASE_FILES))
    repo.checkout("feature", new=True)
    repo.commit(SUBJECT, dict(FIXTURE))
    return repo


def _fake_state(fake: FakeGitLab) -> MergeRequest:
    group = fake.add_group("acme")
    project = fake.add_project(
        path_with_namespace="acme/widget", description="A widget", topics=["python"]
    )
    fake.add_group_member(group.id, "maria", access_level=40)
    fake.commit(project.id, "main", message="chore: initial commit", files=dict(BASE_FILES))
    fake.commit(
        project.id,
        "feature",
        message=SUBJECT,
        files=dict(FIXTURE),
        author_name=AUTHOR[0],
        author_email=AUTHOR[1],
    )
    return fake.open_mr(
        project.id, source_branch="feature", title="test: a fixture", description="Adds a fixture."
    )


async def _check_in_ci_job(
    repo: Repo, mr: MergeRequest, fake: FakeGitLab, tmp_path: Path, *, with_token: bool = True
) -> tuple[int, str, Path]:
    """Run `compliance-bot check` on `repo` as the MR pipeline's job does (CI's variables,
    with or without COMPLIANCE_TOKEN), in a fresh build directory under `tmp_path`:
    (exit code, stderr, the build directory that holds the job's reports)."""
    env = mr_pipeline_env(repo, mr, fake.base_url, COMPLIANCE_TOKEN=fake.token)
    if not with_token:
        del env["COMPLIANCE_TOKEN"]
    build = tmp_path / "build"
    build.mkdir()
    code, _, err = await run_cli_async("check", str(repo.path), cwd=build, env=env)
    return code, err, build


def _bot_note(fake: FakeGitLab, mr: MergeRequest) -> dict[str, Any]:
    [note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    return note


async def _waived_on_the_server(fake: FakeGitLab, bot: Bot) -> MergeRequest:
    """The MR judged by the server, then `.env` waived by a Maintainer."""
    mr = _fake_state(fake)
    assert (await bot.send("Merge Request Hook", hook_for(mr))).status_code == 202
    await bot.settle()
    command = fake.add_note(
        mr.project_id,
        mr.iid,
        f"/compliance waive files.prohibited .env for 14d {REASON}",
        author_username="maria",
    )
    assert (await bot.send("Note Hook", note_hook(mr, command))).status_code == 202
    await bot.settle()
    status = fake.statuses(mr.project_id, mr.head_sha)[-1]
    assert (status["status"], status["description"]) == ("success", "0 errors, 1 waived")
    return mr


def _junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()  # noqa: S314 -- the job's own report, in a test
    return {case.attrib["name"]: case for case in root.iter("testcase")}


async def test_a_waiver_given_on_the_server_passes_the_ci_job(
    fake: FakeGitLab, bot: Bot, tmp_path: Path
) -> None:
    repo = _git_state(tmp_path)
    mr = await _waived_on_the_server(fake, bot)

    code, err, build = await _check_in_ci_job(repo, mr, fake, tmp_path)

    assert code == 0, err
    assert "1 waiver from the bot's MR note applied: 1 finding(s)" in err
    cases = _junit_cases(build / "compliance-junit.xml")
    assert cases["files.prohibited"].find("failure") is None
    skipped = cases["files.prohibited (waived)"].find("skipped")
    assert skipped is not None
    assert "waived by @maria until" in skipped.attrib["message"]
    assert REASON in skipped.attrib["message"]
    quality = json.loads((build / "gl-code-quality-report.json").read_text(encoding="utf-8"))
    assert [e for e in quality if e["check_name"] == "files.prohibited"] == []


async def test_a_forged_note_waives_nothing(fake: FakeGitLab, bot: Bot, tmp_path: Path) -> None:
    repo = _git_state(tmp_path)
    mr = await _waived_on_the_server(fake, bot)
    # Someone else copies the bot's note, record and marker included, and the bot's own goes.
    genuine = _bot_note(fake, mr)
    fake.delete_note(mr.project_id, mr.iid, int(genuine["id"]))
    fake.add_note(mr.project_id, mr.iid, str(genuine["body"]), author_username="eve")

    code, err, build = await _check_in_ci_job(repo, mr, fake, tmp_path)

    assert code == 1, err
    [why] = [line for line in err.splitlines() if "waive" in line]
    assert "@eve" in why and "@compliance-bot" in why and "nothing is waived" in why
    cases = _junit_cases(build / "compliance-junit.xml")
    assert cases["files.prohibited"].find("failure") is not None
    assert "files.prohibited (waived)" not in cases
    quality = json.loads((build / "gl-code-quality-report.json").read_text(encoding="utf-8"))
    assert [e["location"]["path"] for e in quality if e["check_name"] == "files.prohibited"] == [
        ".env"
    ]


async def test_without_a_token_nothing_is_waived_and_the_job_says_why(
    fake: FakeGitLab, bot: Bot, tmp_path: Path
) -> None:
    repo = _git_state(tmp_path)
    mr = await _waived_on_the_server(fake, bot)

    code, err, build = await _check_in_ci_job(repo, mr, fake, tmp_path, with_token=False)

    assert code == 1, err
    [why] = [line for line in err.splitlines() if "waive" in line]
    assert "no COMPLIANCE_TOKEN" in why and "nothing is waived" in why
    assert "files.prohibited (waived)" not in _junit_cases(build / "compliance-junit.xml")


async def test_a_waiver_expired_since_the_note_was_written_waives_nothing(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    repo = _git_state(tmp_path)
    # The server gave the 14-day waiver 30 days ago (its clock set back): the note still
    # records it, and the job, judging now, finds it expired.
    async with running_bot(fake, clock=lambda: time.time() - 30 * 86400) as bot:
        mr = await _waived_on_the_server(fake, bot)

    code, err, build = await _check_in_ci_job(repo, mr, fake, tmp_path)

    assert code == 1, err
    assert (
        "0 waivers from the bot's MR note applied: 0 finding(s) of this head waived; 1 expired"
        in err
    )
    assert "files.prohibited (waived)" not in _junit_cases(build / "compliance-junit.xml")


# -- the record itself, with literals ---------------------------------------------------------


def _waived_report(reason: str = REASON, count: int = 1) -> Report:
    waived = Waived(by="maria", reason=reason, until=2_000_000_000.0)
    findings = tuple(
        Finding(
            rule="files.prohibited",
            severity=Severity.ERROR,
            location=f"secret{n}.env",
            message="a prohibited file",
            waived=waived,
        )
        for n in range(count)
    )
    outcome = RuleOutcome(rule="files.prohibited", title="Prohibited files", findings=findings)
    return Report(head_sha="a" * 40, outcomes=(outcome,))


def test_the_record_round_trips_hidden_in_the_note() -> None:
    note = render_note(_waived_report())
    [line] = [line for line in note.splitlines() if "compliance-bot waivers" in line]
    assert line.startswith("<!-- ") and line.endswith(" -->")
    assert line.count("-->") == 1
    [recorded] = read_waiver_record(note)
    assert (recorded.rule, recorded.by, recorded.until) == ("files.prohibited", "maria", 2e9)
    assert recorded.reason == REASON
    assert len(recorded.fingerprints) == 1
    assert waiver_record(Report(head_sha="a" * 40)) == ""


def test_the_record_is_bounded_and_a_huge_one_still_fits_the_note() -> None:
    note = render_note(_waived_report(reason="x" * 5000, count=3000))
    [line] = [line for line in note.splitlines() if "compliance-bot waivers" in line]
    assert len(line) < 30_000
    [recorded] = read_waiver_record(note)
    assert 0 < len(recorded.fingerprints) < 3000
    assert len(recorded.reason) <= 1000


@pytest.mark.parametrize(
    "payload",
    [
        "not base64 at all!",
        base64.b64encode(b"{not json").decode(),
        base64.b64encode(json.dumps({"version": 99, "waivers": []}).encode()).decode(),
        base64.b64encode(json.dumps({"version": 1, "waivers": [{"rule": 1}]}).encode()).decode(),
        base64.b64encode(json.dumps([[[[[]]]]] * 10).encode()).decode(),
        "A" * 200_000,
    ],
)
def test_a_malformed_record_is_refused(payload: str) -> None:
    body = f"{NOTE_MARKER}\n<!-- compliance-bot waivers: {payload} -->\n"
    with pytest.raises(ValueError):
        read_waiver_record(body)


def test_a_note_without_a_record_has_no_waivers() -> None:
    assert read_waiver_record(f"{NOTE_MARKER}\n### all passed\n") == []
