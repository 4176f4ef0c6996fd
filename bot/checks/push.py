"""Branch pushed: a `compliance` status on the pushed head, when no open MR owns it.

A sha that heads an open MR belongs to the MR check, which covers its commits and more; the
push check leaves it alone so the two never overwrite each other's status (DESIGN.md, 11).
"""

from __future__ import annotations

import logging

from bot import engine, policy, report
from bot.checks import Services
from bot.errors import Retryable
from bot.gitlab import GitLabError
from bot.jobs import ensure_current
from bot.publish import StatusTarget, running_while, set_incomplete, set_status
from bot.webhook import PushEvent

log = logging.getLogger(__name__)


async def check(services: Services, event: PushEvent) -> None:
    gitlab = services.gitlab
    # A push to a group's policy project (or an `extends` target) is read again at once.
    policy.cache_for(gitlab).forget_project(event.project_id)
    if await gitlab.open_merge_requests_for_branch(event.project_id, event.branch):
        log.info("push left to the merge request check", extra={"branch": event.branch})
        return
    target = StatusTarget(event.project_id, event.after, services.status_name)
    try:
        result, target, _ = await running_while(
            gitlab,
            target,
            engine.check_push(gitlab, event, base_config=services.base_config),
            delay=services.running_status_delay,
            checkpoint=ensure_current,
        )
        ensure_current()
        await set_status(
            gitlab, target, report.status_state(result), report.status_description(result)
        )
    except GitLabError as exc:
        await set_incomplete(gitlab, target, exc)
        raise
    if result.retryable:
        # Published as "could not complete"; failing the job makes the sweeper run it again.
        raise Retryable(result.error or "could not complete")
    log.info(
        "push checked",
        extra={"branch": event.branch, "sha": event.after, "state": report.status_state(result)},
    )
