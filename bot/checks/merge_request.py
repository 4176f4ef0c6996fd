"""Merge request checked: a `compliance` status on the head and one up-to-date bot note."""

from __future__ import annotations

import logging
from dataclasses import replace

from bot import engine, report
from bot.checks import Services
from bot.gitlab import GitLabError, GitLabUnavailable
from bot.jobs import ensure_current
from bot.publish import StatusTarget, find_pipeline, set_incomplete, set_status, upsert_note
from bot.webhook import MergeRequestEvent

log = logging.getLogger(__name__)


async def check(services: Services, event: MergeRequestEvent) -> None:
    gitlab = services.gitlab
    # Statuses go on the head sha in the MR's source project, so MRs from forks work.
    # https://docs.gitlab.com/api/commits/#set-commit-pipeline-status
    target = StatusTarget(event.source_project_id, event.head_sha, services.status_name)
    try:
        pipeline_id = await find_pipeline(gitlab, target.project_id, target.sha)
        target = replace(target, pipeline_id=pipeline_id)
        ensure_current()
        await set_status(gitlab, target, "running", "checking…")
        result = await engine.check_merge_request(gitlab, event, base_config=services.base_config)
        if result.superseded_by is not None:
            # The MR's head moved on; its own check owns the note. This sha's `running`
            # ends as canceled rather than spinning forever in the commit list.
            await set_status(
                gitlab, target, "canceled", f"superseded by {result.superseded_by[:8]}"
            )
            log.info("head moved on", extra={"mr": event.target, "sha": event.head_sha})
            return
        note = report.render_note(result)
        ensure_current()
        note_id = await upsert_note(gitlab, event.project_id, event.iid, note)
        ensure_current()
        await set_status(
            gitlab,
            target,
            report.status_state(result),
            report.status_description(result),
            target_url=f"{event.web_url}#note_{note_id}" if event.web_url else None,
        )
    except GitLabError as exc:
        await set_incomplete(gitlab, target, exc)
        raise
    if result.retryable:
        # Published as "could not complete"; failing the job makes the sweeper run it again.
        raise GitLabUnavailable(result.error or "could not complete")
    log.info(
        "merge request checked",
        extra={"mr": event.target, "sha": event.head_sha, "state": report.status_state(result)},
    )
