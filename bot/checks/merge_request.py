"""Merge request checked: a `compliance` status on the head and one up-to-date bot note.

The bot remembers, per MR, what its last check read and what it published. The next event
of the MR then reads only what changed (see `bot.incremental`), and writes only what
changed: an unchanged note is not edited, an unchanged status on the same head is not
posted again. So a label-only update that does not change the verdict costs no call at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from bot import engine, incremental, report
from bot.checks import Services
from bot.errors import Retryable
from bot.gitlab import GitLab, GitLabError, NotFound
from bot.incremental import MergeRequestInputs
from bot.jobs import Superseded, ensure_current, superseded_by_newer_head
from bot.model import Report
from bot.publish import (
    StatusTarget,
    running_while,
    set_incomplete,
    set_status,
    upsert_note,
)
from bot.waivers import apply_waivers
from bot.webhook import JobTarget, MergeRequestEvent, merge_request_from_api

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


async def judge(services: Services, event: MergeRequestEvent) -> engine.MergeRequestCheck:
    """The engine's verdict on the MR's head, published nowhere (a waive command needs the
    findings before it records a waiver; `check(judged=...)` then publishes it)."""
    memory = await _recall(services, event.target)
    return await engine.check_merge_request_incrementally(
        services.gitlab,
        event,
        base_config=services.base_config,
        previous=memory.inputs,
        now=time.time(),
        trees=services.trees,
    )


async def _ready(result: engine.MergeRequestCheck) -> engine.MergeRequestCheck:
    return result


async def _with_waivers(services: Services, event: MergeRequestEvent, checked: Report) -> Report:
    """The report with the MR's active waivers applied: waived findings do not count."""
    if services.memory is None or checked.error is not None or not checked.findings:
        return checked
    active = await services.memory.waivers_of(event.project_id, event.iid)
    return apply_waivers(checked, active, services.clock())


async def check(
    services: Services,
    event: MergeRequestEvent,
    *,
    reuse: bool = True,
    adopted: int = 0,
    verify_head: bool = False,
    judged: engine.MergeRequestCheck | None = None,
) -> None:
    """Check the MR's head and publish the verdict. `reuse=False` reads everything afresh
    and searches for the note (`/compliance recheck`).

    When the MR has moved on to a newer head than the event's, the check adopts that head:
    the newer head's own job may already be gone, superseded in the journal by this older
    event that was accepted after it (replicas commit deliveries in any order, and GitLab
    sends hooks from Sidekiq in any order too). Nothing else would then check it.
    `verify_head` (the job replaced one with another head) reads the MR's head even when
    the check reused what it knew and read no MR: one call, only in that case. `judged` is a
    verdict `judge` just gave for this head, published as it is."""
    gitlab = services.gitlab
    memory = await _recall(services, event.target) if reuse else Memory(None, None)
    # Statuses go on the head sha in the MR's source project, so MRs from forks work.
    # https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
    target = StatusTarget(event.source_project_id, event.head_sha, services.status_name)
    if memory.published is not None and memory.published.head_sha == event.head_sha:
        target = replace(target, pipeline_id=memory.published.pipeline_id)
    running = moved_on = False
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
            )
            if judged is None
            else _ready(judged),
            delay=services.running_status_delay,
            checkpoint=ensure_current,
        )
        checked = result.report
        if verify_head and result.reuse is not engine.Reuse.NONE and not checked.retryable:
            # https://docs.gitlab.com/api/merge_requests/#get-single-mr
            current = (await gitlab.merge_request(event.project_id, event.iid)).get("sha")
            if current and current != event.head_sha:
                checked = replace(checked, superseded_by=str(current))
        if checked.superseded_by is not None:
            # The MR's head moved on. A `running` this check posted ends as canceled rather
            # than spinning forever in the commit list; then the newer head is checked.
            if running:
                await _cancel(gitlab, target, checked.superseded_by)
            log.info("head moved on", extra={"mr": event.target, "sha": event.head_sha})
            moved_on = True
        else:
            checked = await _with_waivers(services, event, checked)
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
    except Superseded:
        # A newer head's job takes over; a `running` left here would never end. (A job that
        # lost its lease to another replica posts nothing: that replica checks this head.)
        if running and superseded_by_newer_head():
            with contextlib.suppress(GitLabError):
                await _cancel(gitlab, target, None)
        raise
    if moved_on:
        await _adopt_newer_head(services, event, reuse=reuse, adopted=adopted)
        return
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
        raise Retryable(checked.error or "could not complete")
    log.info(
        "merge request checked",
        extra={
            "mr": event.target,
            "sha": event.head_sha,
            "state": state,
            "reuse": str(result.reuse),
        },
    )


# How many times one job follows an MR whose head keeps moving before it leaves the rest to
# the newer heads' own events (and the sweeper, which runs a failed job again).
MAX_ADOPTED_HEADS = 3


async def _cancel(gitlab: GitLab, target: StatusTarget, newer: str | None) -> None:
    """End a `running` this check posted on a head that is no longer the MR's newest."""
    why = f"superseded by {newer[:8]}" if newer else "superseded by a newer head"
    await set_status(gitlab, target, "canceled", why)


async def _adopt_newer_head(
    services: Services, event: MergeRequestEvent, *, reuse: bool, adopted: int
) -> None:
    """Check the MR's current head in place of the event's older one."""
    if adopted >= MAX_ADOPTED_HEADS:
        raise Retryable(f"the head of {event.target} kept moving; checking again later")
    ensure_current()  # a newer head's own job is waiting: it checks that head, not this one
    # https://docs.gitlab.com/api/merge_requests/#get-single-mr
    raw = await services.gitlab.merge_request(event.project_id, event.iid)
    current = merge_request_from_api(raw)
    if current is None or raw.get("state") not in (None, "opened"):
        # GitLab is still preparing the new head (its event follows), or the MR is closed.
        log.info("no newer head to check yet", extra={"mr": event.target})
        return
    newer = replace(current, action="update")
    log.info("checking the newer head", extra={"mr": event.target, "sha": newer.head_sha})
    await check(services, newer, reuse=reuse, adopted=adopted + 1)


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


async def _recall(services: Services, target: JobTarget) -> Memory:
    if services.memory is None:
        return Memory(None, None)
    text = await services.memory.load_snapshot(str(target))
    if text is None:
        return Memory(None, None)
    try:
        data = json.loads(text)
        inputs = incremental.from_data(data["inputs"]) if data.get("inputs") else None
        published = Published(**data["published"]) if data.get("published") else None
    except (ValueError, KeyError, TypeError, IndexError):
        # Unreadable memory costs a full read, never a wrong verdict.
        log.warning("ignoring an unreadable snapshot", extra={"mr": str(target)})
        return Memory(None, None)
    return Memory(inputs, published)


async def _remember(services: Services, target: JobTarget, memory: Memory) -> None:
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
    await services.memory.save_snapshot(str(target), text, now=time.time())
