"""Catch-up after downtime: check open MRs whose events the bot never received.

GitLab does not redeliver webhooks, and disables a hook after repeated failures. So on start
and periodically, for each project the bot has seen, the bot lists open MRs updated since its
last event from that project and queues a check for each MR whose head carries no
`compliance` status yet (DESIGN.md, invariant 5).

A project whose listing GitLab answers 404 or 403 (gone, or hidden from the bot's token)
drops out: the store remembers it as of its last event and catch-up skips it until a newer
delivery for it arrives. Ids no GitLab project has cost one listing each, not one per pass.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from bot.gitlab import GitLab, GitLabError, GitLabHTTPError
from bot.store import NewJob, Store
from bot.webhook import event_to_json, merge_request_from_api

log = logging.getLogger(__name__)

# Clocks of GitLab and the bot differ; look a little further back than the last event.
CLOCK_SKEW_SECONDS = 300
# gitlabhq/gitlabhq lib/api/merge_requests.rb, `get ":id/merge_requests"`: `user_project`
# (lib/api/helpers.rb, find_project!) answers 404 "Project Not Found" for a project that does
# not exist or the token cannot see; `authorize! :read_merge_request` answers 403 when the
# token sees the project but not its merge requests.
UNREACHABLE_STATUSES = frozenset({403, 404})


def _unreachable(exc: GitLabError, project_id: int) -> bool:
    """GitLab's answer to the project's MR listing itself (not to a later call) says the
    bot cannot read it."""
    return (
        isinstance(exc, GitLabHTTPError)
        and exc.status in UNREACHABLE_STATUSES
        and exc.path == f"/projects/{project_id}/merge_requests"
    )


async def catch_up(gitlab: GitLab, store: Store, *, status_name: str) -> int:
    """Queue checks for missed MRs; returns how many were queued. A project that cannot be
    read is logged and tried again next time, never taken as having no MRs."""
    queued = 0
    for project_id, last_event_at in await store.projects_seen():
        since = datetime.fromtimestamp(last_event_at - CLOCK_SKEW_SECONDS, UTC)
        listed_at = time.time()
        try:
            # https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests
            merge_requests = await gitlab.get_all(
                f"/projects/{project_id}/merge_requests",
                {"state": "opened", "updated_after": since.isoformat()},
            )
            for raw in merge_requests:
                event = merge_request_from_api(raw)
                if await gitlab.has_status(event.source_project_id, event.head_sha, status_name):
                    continue
                job = NewJob(
                    target=event.target,
                    kind="merge_request",
                    head_sha=event.head_sha,
                    payload=event_to_json(event),
                )
                if await store.enqueue(job, seen_at=listed_at, now=time.time()) is not None:
                    queued += 1
        except GitLabError as exc:
            if _unreachable(exc, project_id):
                await store.mark_unreachable(project_id, as_of=last_event_at, now=time.time())
                log.info(
                    "catch-up skips a project GitLab does not show the bot, until its next "
                    "delivery",
                    extra={"project": project_id, "error": str(exc)},
                )
                continue
            log.warning(
                "catch-up could not read a project",
                extra={"project": project_id, "error": str(exc)},
            )
    if queued:
        log.info("catch-up queued checks", extra={"queued": queued})
    return queued
