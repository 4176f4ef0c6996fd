"""MR commands, sent as GitLab's Note Hook with the published payload."""

from __future__ import annotations

from bot.commands import Command, parse
from bot.report import NOTE_MARKER
from tests.conftest import Bot, delivery_calls
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.payloads import note_hook
from tests.scenarios import compliant_project

NOTE_HOOK = "Note Hook"


def _setup(fake: FakeGitLab) -> MergeRequest:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    return fake.open_mr(project.id, source_branch="feature", description="x")


def test_parse() -> None:
    assert parse("/compliance recheck") is Command.RECHECK
    assert parse("  /compliance   RECHECK \nplease") is Command.RECHECK
    assert parse("/compliance help") is Command.HELP
    assert parse("/compliance") is Command.HELP
    assert parse("/compliance dance") is Command.HELP
    assert parse("please /compliance recheck") is None
    assert parse("/compliancerecheck") is None
    assert parse("LGTM") is None


async def test_recheck_checks_the_current_head_and_acknowledges(fake: FakeGitLab, bot: Bot) -> None:
    mr = _setup(fake)
    note = fake.add_note(mr.project_id, mr.iid, "/compliance recheck", author_username="ada")
    response = await bot.send(
        NOTE_HOOK, note_hook(mr, note), headers={"X-Gitlab-Event-UUID": "chain-1"}
    )
    assert response.status_code == 202 and response.json() == {"status": "accepted"}
    await bot.settle()
    assert [s["status"] for s in fake.statuses(mr.project_id, mr.head_sha)] == ["success"]
    assert [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    assert [a["name"] for a in fake.award_emoji] == ["eyes"]
    # Every call made for the delivery carries its event UUID (GitLab's recursion guard).
    assert delivery_calls(fake) and all(
        r.headers.get("x-gitlab-event-uuid") == "chain-1" for r in delivery_calls(fake)
    )


async def test_help_replies_with_the_commands(fake: FakeGitLab, bot: Bot) -> None:
    mr = _setup(fake)
    note = fake.add_note(mr.project_id, mr.iid, "/compliance help", author_username="ada")
    await bot.send(NOTE_HOOK, note_hook(mr, note))
    await bot.settle()
    replies = [n for n in fake.notes(mr.project_id, mr.iid) if "/compliance recheck" in n["body"]]
    assert len(replies) == 1 and replies[0]["author"]["username"] == "compliance-bot"
    assert fake.statuses(mr.project_id, mr.head_sha) == []  # help runs no check


async def test_the_bots_own_notes_and_plain_comments_are_ignored(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _setup(fake)
    own = fake.add_note(
        mr.project_id, mr.iid, "/compliance recheck", author_username="compliance-bot"
    )
    plain = fake.add_note(mr.project_id, mr.iid, "Looks good", author_username="ada")
    await bot.send(NOTE_HOOK, note_hook(mr, own))
    response = await bot.send(NOTE_HOOK, note_hook(mr, plain))
    assert response.json()["status"] == "ignored"
    await bot.settle()
    # Who am I: asked once, as the bot started; nothing else.
    assert [r.path for r in fake.requests] == ["/api/v4/user"]
    assert fake.award_emoji == []
