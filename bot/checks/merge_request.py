"""Merge request checked: a `compliance` status on the head and one up-to-date bot note.

The bot remembers, per MR, what its last check read and what it published. The next event
of the MR then reads only what changed (see `bot.incremental`), and writes only what
changed: an unchanged note is not edited, an unchanged status on the same head is not
posted again. So a label-only update that does not change the verdict costs no call at all.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot import engine, incremental, report
from bot.checks import Services
from bot.gitlab import GitLab, GitLabError, GitLabUnavailable, NotFound
from bot.incremental import MergeRequestInputs
from bot.jobs import ensure_current
from bot.publish import (
    StatusTarget,
    running_while,
    set_incomplete,
    set_status,
    upsert_note,
)
from bot.webhook import MergeRequestEvent

log = logging.getLogger(__name__)

# What is remembered of one MR is dropped past this size: such an MR is read afresh on each
# event, and no store write is large enough to stall the event loop.
MAX_MEMORY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Published:
    """What the MR shows now, as the bot last posted it."""

    head_sha: str
    note_id: int
    note_body: str
    state: str
    description: str
    pipeline_id: int | None = None  # the head's pipeline the status joined, if any


@dataclass(frozen=True)
class Memory:
    inputs: MergeRequestInputs | None
    published: Published | None


async def check(services: Services, event: MergeRequestEvent, *, reuse: bool = True) -> None:
    """Check the MR's head and publish the verdict. `reuse=False` reads everything afresh
    and searches for the note (`/compliance recheck`)."""
    gitlab = services.gitlab
    memory = await _recall(services, event.target) if reuse else Memory(None, None)
    # Statuses go on the head sha in the MR's source project, so MRs from forks work.
    # https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
    target = StatusTarget(event.source_project_id, event.head_sha, services.status_name)
    if memory.published is not None and memory.published.head_sha == event.head_sha:
        target = replace(target, pipeline_id=memory.published.pipeline_id)
    try:
        result, target, running = await running_while(
            gitlab,
            target,
            engine.check_merge_request_incrementally(
                gitlab,
                event,
                base_config=services.base_config,
                previous=memory.inputs if reuse else None,
                now=time.time(),
                trees=services.trees if reuse else None,
            ),
            delay=services.running_status_delay,
            checkpoint=ensure_current,
        )
        checked = result.report
        if checked.superseded_by is not None:
            # The MR's head moved on; its own check owns the note. A `running` this check
            # posted ends as canceled rather than spinning forever in the commit list.
            if running:
                await set_status(
                    gitlab, target, "canceled", f"superseded by {checked.superseded_by[:8]}"
                )
            log.info("head moved on", extra={"mr": event.target, "sha": event.head_sha})
            return
        links = report.Links.for_merge_request(event.web_url)
        body = report.render_note(checked, links)
        state = report.status_state(checked)
        description = report.status_description(checked)
        published = memory.published
        ensure_current()
        note_id = await _publish_note(gitlab, event, body, published)
        unchanged = (
            published is not None
            and not running
            and (published.head_sha, published.state, published.description)
            == (event.head_sha, state, description)
        )
        if not unchanged:
            ensure_current()
            await set_status(
                gitlab,
                target,
                state,
                description,
                target_url=report.target_url(links, note_id),
            )
    except GitLabError as exc:
        await set_incomplete(gitlab, target, exc)
        raise
    await _remember(
        services,
        event.target,
        Memory(
            # A check that could not complete proves nothing to reuse.
            inputs=None if checked.retryable else result.inputs,
            published=Published(
                event.head_sha, note_id, body, state, description, target.pipeline_id
            ),
        ),
    )
    if checked.retryable:
        # Published as "could not complete"; failing the job makes the sweeper run it again.
        raise GitLabUnavailable(checked.error or "could not complete")
    log.info(
        "merge request checked",
        extra={
            "mr": event.target,
            "sha": event.head_sha,
            "state": state,
            "reuse": str(result.reuse),
        },
    )


async def _publish_note(
    gitlab: GitLab, event: MergeRequestEvent, body: str, published: Published | None
) -> int:
    """The note's id after making it say `body`: no call when it already does, one edit
    when the bot knows its note, and a search (or a new note) otherwise."""
    if published is not None:
        if published.note_body == body:
            return published.note_id
        try:
            await gitlab.edit_note(event.project_id, event.iid, published.note_id, body)
            return published.note_id
        except NotFound:
            log.info("the bot's note was deleted; writing it again", extra={"mr": event.target})
    return await upsert_note(gitlab, event.project_id, event.iid, body)


async def _recall(services: Services, target: str) -> Memory:
    if services.memory is None:
        return Memory(None, None)
    text = await services.memory.load_snapshot(target)
    if text is None:
        return Memory(None, None)
    try:
        data = json.loads(text)
        inputs = incremental.from_data(data["inputs"]) if data.get("inputs") else None
        published = Published(**data["published"]) if data.get("published") else None
    except (ValueError, KeyError, TypeError, IndexError):
        # Unreadable memory costs a full read, never a wrong verdict.
        log.warning("ignoring an unreadable snapshot", extra={"mr": target})
        return Memory(None, None)
    return Memory(inputs, published)


async def _remember(services: Services, target: str, memory: Memory) -> None:
    if services.memory is None:
        return
    data: dict[str, Any] = {
        "inputs": incremental.as_data(memory.inputs) if memory.inputs else None,
        "published": asdict(memory.published) if memory.published else None,
    }
    text = json.dumps(data, separators=(",", ":"))
    if len(text) > MAX_MEMORY_BYTES:
        data["inputs"] = None
        text = json.dumps(data, separators=(",", ":"))
    await services.memory.save_snapshot(target, text, now=time.time())
