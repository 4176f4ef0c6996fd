"""MR commands with limits: a burst of comments gets a bounded number of answers.

Through a real `serve` process and the fake GitLab: anyone who can comment may run
`/compliance help` and `/compliance recheck`, so the bot answers at most
COMMAND_LIMIT_PER_MR per MR and COMMAND_LIMIT_PER_USER per commenter in a window.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx

from bot.commands import HELP_TEXT
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.payloads import note_hook
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project

NOTE_HOOK = "Note Hook"
PER_MR = 5  # the defaults
PER_USER = 10


def _answered(fake: FakeGitLab, mr: MergeRequest) -> int:
    """Commands the bot took up on this MR: its :eyes: reaction on each."""
    note_ids = {n["id"] for n in fake.notes(mr.project_id, mr.iid)}
    return sum(1 for award in fake.award_emoji if award.get("awardable_id") in note_ids)


async def _wait_for_jobs(journal: Path) -> None:
    """Until the bot has no job queued or running (read from its journal, as it writes it)."""
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(journal) as db:
            (pending,) = db.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchone()
        if pending == 0:
            return
        assert time.monotonic() < deadline, f"{pending} jobs still pending"
        await asyncio.sleep(0.1)


async def test_a_burst_of_commands_gets_a_bounded_number_of_answers(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    mrs = []
    for i in range(4):
        fake.commit(project.id, f"topic-{i}", message=f"feat: topic {i}")
        mrs.append(fake.open_mr(project.id, source_branch=f"topic-{i}", description="x"))
    journal = tmp_path / "journal.db"
    bot = BotProcess(fake, journal)
    await bot.start()
    sent = 0
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def comment(mr: MergeRequest, user: str, body: str) -> None:
                nonlocal sent
                note = fake.add_note(mr.project_id, mr.iid, body, author_username=user)
                answer = await deliver(client, bot.url, NOTE_HOOK, note_hook(mr, note))
                assert answer.status_code == 202  # every delivery is still accepted
                sent += 1

            # A burst of 20 on one MR, from one commenter.
            for i in range(20):
                await comment(mrs[0], "ada", "/compliance help" if i % 2 else "/compliance recheck")
            await _wait_for_jobs(journal)
            assert _answered(fake, mrs[0]) == PER_MR
            helps = [n for n in fake.notes(project.id, mrs[0].iid) if n["body"] == HELP_TEXT]
            assert len(helps) <= PER_MR

            # The MR's limit does not hold back another commenter elsewhere.
            await comment(mrs[1], "bob", "/compliance help")
            # The commenter's own limit holds across MRs: 2 comments on each of 3 more MRs,
            # of which only PER_USER - PER_MR are answered.
            for mr in mrs[1:]:
                for _ in range(2):
                    await comment(mr, "ada", "/compliance help")
            await _wait_for_jobs(journal)
    finally:
        await bot.stop()
    answered = [_answered(fake, mr) for mr in mrs]
    print(f"\n{sent} commands sent, {sum(answered)} answered ({answered} per MR)")
    assert answered[0] == PER_MR
    assert sum(answered[1:]) == 1 + (PER_USER - PER_MR)  # bob's, and ada's remaining 5


def test_the_limits_slide_and_the_table_stays_bounded() -> None:
    from bot.commands import CommandLimiter, CommandLimits

    limiter = CommandLimiter(CommandLimits(per_merge_request=2, per_user=3, max_tracked=50))
    answered = [limiter.allow(project_id=1, mr_iid=1, user="ada", now=t) for t in range(5)]
    assert answered == [True, True, False, False, False]
    # Once the window has passed, the MR may be answered again.
    assert limiter.allow(project_id=1, mr_iid=1, user="ada", now=600.0)
    for i in range(1000):
        limiter.allow(project_id=1, mr_iid=i, user=f"user-{i}", now=700.0)
    assert len(limiter._answered) <= 50
