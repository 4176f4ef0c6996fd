"""Secrets stay secret, through a real `serve` process and the fake GitLab over HTTP.

A token with a stray newline stops the bot at start with a line naming the variable (never
the value); a GitLab error that echoes the token never reaches the logs, the journal, a
status or a note; and `/readyz` is unready while GitLab refuses the bot's token.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from bot.redaction import REDACTED
from tests.conftest import WEBHOOK_SECRET, delivery_calls
from tests.fake_gitlab import FakeGitLab
from tests.gfm import shown_text
from tests.processes import BotProcess, deliver, wait_for_readyz
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"


async def _start_refused(bot: BotProcess) -> str:
    """The bot's output, once it refused to start (fails the test if it started)."""
    try:
        await bot.start()
    except RuntimeError as refused:
        return str(refused)
    await bot.stop()
    raise AssertionError("the bot started with a secret it should have refused")


@pytest.mark.parametrize(
    ("variable", "suffix"),
    [("GITLAB_TOKEN", "\n"), ("WEBHOOK_SECRET", " "), ("GITLAB_TOKEN", "\r\n")],
)
async def test_a_secret_with_surrounding_whitespace_stops_serve_with_a_clear_line(
    fake: FakeGitLab, tmp_path: Path, variable: str, suffix: str
) -> None:
    value = {"GITLAB_TOKEN": fake.token, "WEBHOOK_SECRET": WEBHOOK_SECRET}[variable]
    bot = BotProcess(fake, tmp_path / "journal.db", **{variable: value + suffix})
    output = await _start_refused(bot)
    assert f"{variable} has leading or trailing whitespace" in output, output
    assert value not in output
    assert bot.process is not None and bot.process.returncode == 2
    assert delivery_calls(fake) == []  # it never called GitLab with the broken header


async def test_gitlab_error_text_echoing_the_token_reaches_no_sink(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    # A proxy (or GitLab) that quotes the request it refuses, the token header included,
    # as plain text and as JSON.
    fake.fail(
        "GET",
        r"/merge_requests/\d+/diffs$",
        400,
        body=f"Bad request: header PRIVATE-TOKEN: {fake.token} is not allowed here",
    )
    fake.fail(
        "GET",
        r"/repository/compare$",
        400,
        body=json.dumps({"message": f"400 bad token {fake.token}, webhook {WEBHOOK_SECRET}"}),
    )
    journal = tmp_path / "journal.db"
    bot = BotProcess(fake, journal)
    await bot.start()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await deliver(client, bot.url, MR_HOOK, hook_for(mr))).status_code == 202
        deadline = time.monotonic() + 30
        while not any(
            str(s["description"]).startswith("could not complete")
            for s in fake.statuses(project.id, mr.head_sha)
        ):
            assert time.monotonic() < deadline, fake.statuses(project.id, mr.head_sha)
            await asyncio.sleep(0.1)
    output = await bot.stop()
    with sqlite3.connect(journal) as db:
        errors = [row[0] for row in db.execute("SELECT error FROM jobs WHERE error IS NOT NULL")]

    statuses = [str(s["description"]) for s in fake.statuses(project.id, mr.head_sha)]
    notes = [str(n["body"]) for n in fake.notes(project.id, mr.iid)]
    assert errors, "the failed check left no error in the journal"
    sinks = {"log": [output], "journal": errors, "status": statuses, "note": notes}
    for sink, texts in sinks.items():
        for text in texts:
            for secret in (fake.token, WEBHOOK_SECRET):
                assert secret not in text, (sink, text)
    # The error itself still reaches every sink, with the token blanked out.
    failed = [d for d in statuses if d.startswith("could not complete")]
    assert REDACTED in failed[-1], failed
    assert any(REDACTED in e for e in errors), errors
    assert any(REDACTED in shown_text(n) for n in notes), notes  # as the note shows it


async def test_readyz_is_unready_while_gitlab_refuses_the_token(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    issued = fake.token
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            fake.token = "glpat-rotated-token"  # the bot's token is revoked: GitLab answers 401
            assert (await deliver(client, bot.url, MR_HOOK, hook_for(mr))).status_code == 202
            await wait_for_readyz(client, bot.url, 503)
            assert "401" in (await client.get(f"{bot.url}/readyz")).json()["status"]
            assert (await client.get(f"{bot.url}/healthz")).status_code == 200

            fake.token = issued  # the token works again: ready again, without a restart
            await wait_for_readyz(client, bot.url, 200)
    finally:
        output = await bot.stop()
    assert issued not in output


def test_every_spelling_of_a_secret_is_redacted() -> None:
    from bot.redaction import Redactor

    token = "glpat-abc123\n"
    redact = Redactor([token])
    for spelling in (
        f"Illegal header value {token.encode()!r}",  # httpx's refusal of the header
        f"token={token.strip()}&x=1",
        json.dumps({"error": token}),
        "private_token=glpat-abc123%0A",
    ):
        assert "glpat-abc123" not in redact(spelling), spelling
        assert REDACTED in redact(spelling)
