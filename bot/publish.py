"""Putting a verdict where people look: the commit status and the one bot note per MR."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.gitlab import GitLab, GitLabError, GitLabHTTPError, OutcomeUnknown
from bot.redaction import redact
from bot.report import NOTE_MARKER, incomplete_description

log = logging.getLogger(__name__)

T = TypeVar("T")

# A concurrent update of one sha's status answers 409; it clears once the other update is
# done, so a few short retries settle it.
# https://docs.gitlab.com/api/commits/#set-commit-pipeline-status (and gitlab-foss#25807)
CONFLICT_RETRIES = 3
CONFLICT_DELAY_SECONDS = 1.0
# Creating the note when its answers keep getting lost: look, create, look again...
NOTE_CREATE_ATTEMPTS = 3

# A pipeline refuses an external status named like one of its CI jobs: gitlabhq/gitlabhq
# app/models/generic_commit_status.rb `name_uniqueness_across_types`, answered by
# app/services/ci/create_commit_status_service.rb as 400
# {"message": {"name": ["has already been taken"]}}. GitLab puts a status into the sha's
# newest pipeline whether or not `pipeline_id` is sent (`first_matching_pipeline`), so the
# only way to post there is another name: the status name with this suffix.
#
# That same `first_matching_pipeline` (the sha's newest pipeline, `newest_first(sha:)`) is
# why the bot sends no `pipeline_id` and looks none up: GitLab attaches the status to the
# pipeline `GET /pipelines?sha=` would have named, and creates an external pipeline only
# when the sha has none, as it would with the looked-up id absent. One call less a verdict.
TAKEN_NAME_SUFFIX = " (bot)"


def fallback_status_name(name: str) -> str:
    """The name the bot posts under when a CI job of the pipeline holds `name`."""
    return name + TAKEN_NAME_SUFFIX


def _name_taken(exc: GitLabHTTPError) -> bool:
    text = str(exc)
    return exc.status == 400 and "name" in text and "has already been taken" in text


@dataclass(frozen=True)
class StatusTarget:
    """Where a status goes: the head sha in the project that holds it (an MR's source
    project, so MRs from forks work). GitLab attaches it to the sha's newest pipeline;
    `pipeline_id` names one only when the caller already knows it."""

    project_id: int
    sha: str
    name: str
    pipeline_id: int | None = None


async def running_while(
    gitlab: GitLab,
    target: StatusTarget,
    work: Awaitable[T],
    *,
    delay: float,
    checkpoint: Callable[[], None],
) -> tuple[T, StatusTarget, bool]:
    """Await `work`; if it takes longer than `delay`, show `running` on the target meanwhile.

    A quick check goes straight to its verdict: one status write instead of two. Returns
    the result, the target and whether `running` was posted. `checkpoint` runs before the
    write (the job's supersede check).
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=delay)
        running = not done
        if running:
            checkpoint()
            await set_status(gitlab, target, "running", "checking…")
        return await task, target, running
    finally:
        task.cancel()


async def set_status(
    gitlab: GitLab,
    target: StatusTarget,
    state: str,
    description: str,
    *,
    target_url: str | None = None,
) -> None:
    name = target.name
    # What GitLab shows is a sink: the description may quote GitLab's error text.
    description = redact(description)
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            await gitlab.post_status(
                target.project_id,
                target.sha,
                state=state,
                name=name,
                description=description,
                target_url=target_url,
                pipeline_id=target.pipeline_id,
            )
            return
        except GitLabHTTPError as exc:
            # GitLab refuses a repeated transition (`running` over `running`) with 400
            # "Cannot transition status"; the sha already shows what we meant to post.
            if exc.status == 400 and "transition" in str(exc).lower():
                log.info("status already %s", state, extra={"sha": target.sha})
                return
            if name == target.name and _name_taken(exc):
                # A CI job of the pipeline has the status's name: post under the fallback
                # name (every post of this sha's check does the same, so `running` and the
                # verdict land on one status).
                name = fallback_status_name(target.name)
                log.info("a CI job holds the status name", extra={"sha": target.sha})
                continue
            if exc.status == 409 and attempt < CONFLICT_RETRIES:
                await asyncio.sleep(CONFLICT_DELAY_SECONDS * (attempt + 1))
                continue
            raise


async def upsert_note(gitlab: GitLab, project_id: int, iid: int, body: str) -> int:
    """Create the bot's note, or edit it in place; skip the edit when the text is the same.

    The note is the bot's own (author) and carries the hidden marker. Every page of notes is
    searched, oldest first, because a busy MR pushes the bot's note past the first page.
    When the answer to creating it was lost, GitLab may have created it all the same: the
    notes are searched again before another is created, so the MR keeps one bot note.
    """
    # What GitLab shows is a sink: the note may quote GitLab's error text.
    body = redact(body)
    for attempt in range(1, NOTE_CREATE_ATTEMPTS + 1):
        note_id = await _find_and_edit_note(gitlab, project_id, iid, body)
        if note_id is not None:
            return note_id
        try:
            created = await gitlab.create_note(project_id, iid, body)
        except OutcomeUnknown as exc:
            if attempt == NOTE_CREATE_ATTEMPTS:
                raise
            log.info("note creation answer lost; looking for it: %s", exc, extra={"mr": iid})
            continue
        return int(created["id"])
    raise AssertionError("unreachable")  # the loop returns or raises


async def _find_and_edit_note(gitlab: GitLab, project_id: int, iid: int, body: str) -> int | None:
    """The bot's note, made to say `body` (no edit when it already does); None if absent."""
    me = await gitlab.current_user()
    async for page in gitlab.merge_request_notes(project_id, iid):
        for note in page:
            author = note.get("author") or {}
            if author.get("id") == me.get("id") and NOTE_MARKER in str(note.get("body", "")):
                note_id = int(note["id"])
                if note.get("body") != body:
                    await gitlab.edit_note(project_id, iid, note_id, body)
                return note_id
    return None


async def set_incomplete(gitlab: GitLab, target: StatusTarget, exc: GitLabError) -> None:
    """Best effort, after GitLab failed mid-check: the status says the check could not
    complete, so an earlier `running` or a stale `success` is not left standing."""
    description = incomplete_description(str(exc))
    try:
        await set_status(gitlab, target, "failed", description)
    except GitLabError as second:
        log.error("could not mark the check failed: %s", second, extra={"sha": target.sha})
