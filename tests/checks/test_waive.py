"""`/compliance waive` and `unwaive`, sent as GitLab's Note Hook to the bot over HTTP; judged
by the statuses and notes the fake GitLab ends up holding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.report import NOTE_MARKER
from tests.conftest import Bot, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.gfm import shown_text
from tests.payloads import note_hook
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"
NOTE_HOOK = "Note Hook"
RULE = "commit.conventional"
REASON = "Imported from the old tracker <b>as is</b>"
WAIVE = f"/compliance waive {RULE} {REASON}"


class Clock:
    """The bot's clock for waivers, moved on by the test instead of waiting days."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bot(fake: FakeGitLab, clock: Clock) -> AsyncIterator[Bot]:
    # Sweeps often, so an expiry is acted on soon after the clock passes it.
    async with running_bot(fake, clock=clock, catchup_interval_seconds=0.2) as running:
        yield running


async def _failing_mr(fake: FakeGitLab, bot: Bot, *, config: str | None = None) -> MergeRequest:
    """An MR by `ada` whose one commit is not a Conventional Commit: one error. `maria` is a
    Maintainer through the `acme` group, `dev` a Developer of the project."""
    group = fake.add_group("acme")
    project = compliant_project(fake)
    if config is not None:
        fake.commit(
            project.id, "main", message="chore: rules", files={".gitlab/compliance.yml": config}
        )
    fake.add_group_member(group.id, "maria", access_level=40)
    fake.add_project_member(project.id, "dev", access_level=30)
    fake.add_project_member(project.id, "ada", access_level=40)
    fake.commit(project.id, "feature", message="Added stuff", files={"src/a.py": "x = 1\n"})
    mr = fake.open_mr(project.id, source_branch="feature", description="Adds a.")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _status(fake, mr)["description"] == "1 error, 0 warnings"
    return mr


def _status(fake: FakeGitLab, mr: MergeRequest) -> dict[str, Any]:
    statuses = [s for s in fake.statuses(mr.project_id, mr.head_sha) if s["name"] == "compliance"]
    assert statuses, "no compliance status"
    return statuses[-1]


def _bot_note(fake: FakeGitLab, mr: MergeRequest) -> str:
    [note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    return shown_text(str(note["body"]))


def _replies(fake: FakeGitLab, mr: MergeRequest) -> list[str]:
    return [
        shown_text(str(n["body"]))
        for n in fake.notes(mr.project_id, mr.iid)
        if n["author"]["username"] == "compliance-bot" and NOTE_MARKER not in str(n["body"])
    ]


async def _comment(
    fake: FakeGitLab, bot: Bot, mr: MergeRequest, user: str, body: str
) -> dict[str, Any]:
    note = fake.add_note(mr.project_id, mr.iid, body, author_username=user)
    response = await bot.send(NOTE_HOOK, note_hook(mr, note))
    assert response.status_code == 202
    await bot.settle()
    return note


async def test_a_maintainer_waives_a_finding_with_a_reason(fake: FakeGitLab, bot: Bot) -> None:
    mr = await _failing_mr(fake, bot)

    await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE} for 14d {REASON}")

    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("success", "0 errors, 1 waived")
    note = _bot_note(fake, mr)
    assert "Compliance: 0 errors, 1 waived" in note
    assert "Waived: 1" in note and "waived by @maria until" in note
    # The reason is shown as written: user text never becomes markup.
    assert "Imported from the old tracker <b>as is</b>" in note
    assert _replies(fake, mr) == []

    # Withdrawn: the finding counts again.
    await _comment(fake, bot, mr, "maria", f"/compliance unwaive {RULE}")
    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    assert "Waived" not in _bot_note(fake, mr)


@pytest.mark.parametrize(
    ("user", "why"),
    [
        ("dev", "needs Maintainer (40) on this project; you have Developer (30)"),
        ("ada", "the merge request's author cannot waive findings on it"),
        ("eve", "you are not a member of it"),
        ("blocked", "your GitLab account is not active"),
    ],
)
async def test_who_may_not_waive_is_told_why_and_nothing_changes(
    fake: FakeGitLab, bot: Bot, user: str, why: str
) -> None:
    mr = await _failing_mr(fake, bot)
    fake.add_project_member(mr.project_id, "blocked", access_level=50, state="blocked")

    await _comment(fake, bot, mr, user, WAIVE)

    [reply] = _replies(fake, mr)
    assert reply.startswith(f"⛔ @{user}: not done:") or reply.startswith(f":no_entry: @{user}")
    assert why in reply
    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    assert "Waived" not in _bot_note(fake, mr)


async def test_unknown_rules_and_rules_that_did_not_fire_are_refused(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _failing_mr(fake, bot)
    await _comment(fake, bot, mr, "maria", "/compliance waive commit.nope <img src=x> because")
    await _comment(fake, bot, mr, "maria", "/compliance waive commit.dco not needed")
    await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE}")
    await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE} 0123456789ab wrong commit")
    replies = _replies(fake, mr)
    assert len(replies) == 4
    assert "unknown rule commit.nope" in replies[0]
    assert f"commit.dco found nothing on {mr.head_sha[:8]}" in replies[1]
    assert "a waiver needs a reason" in replies[2]
    assert f"found nothing at 0123456789ab on {mr.head_sha[:8]}" in replies[3]
    assert _status(fake, mr)["status"] == "failed"


async def test_a_rule_marked_waivable_false_cannot_be_waived(fake: FakeGitLab, bot: Bot) -> None:
    config = f"rules:\n  {RULE}: {{severity: error, waivable: false}}\n"
    mr = await _failing_mr(fake, bot, config=config)
    await _comment(fake, bot, mr, "maria", WAIVE)
    [reply] = _replies(fake, mr)
    assert f"{RULE} cannot be waived here (waivable: false in .gitlab/compliance.yml)" in reply
    assert _status(fake, mr)["status"] == "failed"


async def test_a_new_finding_on_a_later_push_is_not_waived(fake: FakeGitLab, bot: Bot) -> None:
    mr = await _failing_mr(fake, bot)
    first_head = mr.head_sha
    await _comment(fake, bot, mr, "maria", WAIVE)
    assert _status(fake, mr)["status"] == "success"

    fake.commit(mr.project_id, "feature", message="More stuff", files={"src/b.py": "y = 2\n"})
    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=first_head))
    await bot.settle()

    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings, 1 waived")
    note = _bot_note(fake, mr)
    assert "More stuff" in note and "Waived: 1" in note


async def test_an_edited_comment_gives_no_command_and_takes_none_back(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _failing_mr(fake, bot)
    # A comment edited into a waive command: GitLab sends `action: update`; ignored.
    note = fake.add_note(mr.project_id, mr.iid, "Looks fine", author_username="maria")
    edited = fake.edit_note(mr.project_id, mr.iid, note["id"], WAIVE)
    response = await bot.send(NOTE_HOOK, note_hook(mr, edited, action="update"))
    assert response.json()["status"] == "ignored"
    await bot.settle()
    assert _status(fake, mr)["status"] == "failed"

    # A waiver given, then its comment edited away or deleted: the record stands.
    given = await _comment(fake, bot, mr, "maria", WAIVE)
    edited = fake.edit_note(mr.project_id, mr.iid, given["id"], "never mind")
    await bot.send(NOTE_HOOK, note_hook(mr, edited, action="update"))
    fake.delete_note(mr.project_id, mr.iid, given["id"])
    await bot.send(MR_HOOK, hook_for(mr, action="update", changes={"labels": {}}))
    await bot.settle()
    assert _status(fake, mr)["description"] == "0 errors, 1 waived"


async def test_an_expired_waiver_turns_the_status_back_to_failed_without_a_push(
    fake: FakeGitLab, bot: Bot, clock: Clock
) -> None:
    mr = await _failing_mr(fake, bot)
    await _comment(fake, bot, mr, "maria", f"/compliance waive {RULE} for 2d {REASON}")
    assert _status(fake, mr)["status"] == "success"

    clock.offset = 3 * 86400  # three days later; no event at all
    deadline = time.monotonic() + 60
    while _status(fake, mr)["status"] != "failed":
        assert time.monotonic() < deadline, "the expired waiver still counts"
        await asyncio.sleep(0.1)
    await bot.settle()
    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    assert "Waived" not in _bot_note(fake, mr)


async def test_a_group_policy_locks_waivable_false_and_a_project_cannot_undo_it(
    fake: FakeGitLab, bot: Bot
) -> None:
    # The group's policy project (issue 22) locks the rule unwaivable; the project's own file
    # tries to make it waivable again.
    fake.add_group("acme")
    policy = fake.add_project(path_with_namespace="acme/compliance-policy")
    fake.commit(
        policy.id,
        "main",
        message="chore: policy",
        files={
            ".gitlab/compliance-policy.yml": (
                f"rules:\n  {RULE}:\n    severity: error\n    waivable: false\n    locked: true\n"
            )
        },
    )
    mr = await _failing_mr(fake, bot, config=f"rules:\n  {RULE}: {{waivable: true}}\n")
    assert f"ignored {RULE} waivable" in _bot_note(fake, mr)  # the attempt is reported

    await _comment(fake, bot, mr, "maria", WAIVE)

    [reply] = _replies(fake, mr)
    assert f"{RULE} cannot be waived here (waivable: false" in reply
    status = _status(fake, mr)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    assert "Waived" not in _bot_note(fake, mr)
