"""Catch-up after downtime: check open MRs and branch heads whose events never came.

GitLab does not redeliver webhooks, and disables a hook after repeated failures. So on start
and periodically, for each project the bot has seen, the bot lists open MRs updated since its
last event from that project and queues a check for each MR whose head carries no
`compliance` status yet (DESIGN.md, invariant 5). GitLab also sends no push hook at all for
a push of more than 3 branches, so the branches committed to since then are looked at too
(`catch_up_branches`).

A project whose listing GitLab answers 404 or 403 (gone, or hidden from the bot's token)
drops out: the store remembers it as of its last event and catch-up skips it until a newer
delivery for it arrives. Ids no GitLab project has cost one listing each, not one per pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.gitlab import GitLab, GitLabError, GitLabHTTPError
from bot.jobs import job_for
from bot.publish import fallback_status_name
from bot.store import Store
from bot.webhook import (
    ZERO_SHA,
    MergeRequestEvent,
    PushEvent,
    merge_request_from_api,
)

log = logging.getLogger(__name__)

# Clocks of GitLab and the bot differ; look a little further back than the last event.
CLOCK_SKEW_SECONDS = 300
# Branches looked at per project and interval: the most recently committed ones (one page).
RECENT_BRANCHES = 20
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
    """Queue checks for missed MRs and pushes; returns how many were queued. A project that
    cannot be read is logged and tried again next time, never taken as having no MRs."""
    queued = 0
    # The bot's status may carry the fallback name where a CI job holds the first one.
    names = (status_name, fallback_status_name(status_name))
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
                event = _listed_merge_request(raw, project_id)
                if event is None:
                    continue
                if await gitlab.has_status(event.source_project_id, event.head_sha, *names):
                    continue
                job = job_for(event)
                if await store.enqueue(job, seen_at=listed_at, now=time.time()) is not None:
                    queued += 1
            queued += await catch_up_branches(
                gitlab,
                store,
                project_id,
                since=since,
                listed_at=listed_at,
                status_names=names,
                merge_request_branches=frozenset(
                    str(raw.get("source_branch"))
                    for raw in merge_requests
                    if raw.get("source_project_id", project_id) == project_id
                ),
            )
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


def _listed_merge_request(raw: Mapping[str, Any], project_id: int) -> MergeRequestEvent | None:
    """The listed MR as an event; None, and the next MR, when it has nothing to check yet
    (GitLab still preparing it: `sha` null) or lacks a field the bot needs."""
    try:
        event = merge_request_from_api(dict(raw))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning(
            "catch-up skips an MR it cannot read",
            extra={"project": project_id, "error": repr(exc)[:200]},
        )
        return None
    if event is None:
        log.info("catch-up: an MR has no head yet", extra={"project": project_id})
    return event


async def catch_up_branches(
    gitlab: GitLab,
    store: Store,
    project_id: int,
    *,
    since: datetime,
    listed_at: float,
    status_names: tuple[str, ...],
    merge_request_branches: frozenset[str],
) -> int:
    """Queue push checks for branch heads whose push hook never came; returns how many.

    A push that changes more than `push_event_hooks_limit` (3) branches fires no push hook
    (gitlabhq/gitlabhq: app/services/git/process_ref_changes_service.rb;
    doc/user/project/integrations/webhooks.md "Push event limits"). Such a branch is
    checked here when its head commit is newer than `since`, carries no bot status, and
    heads no open MR (whose own hooks still fire and whose catch-up is above). On the
    default branch, whose earlier head the bot cannot know, the head commit is judged.

    Cost per project and interval: 1 call (the RECENT_BRANCHES most recently committed
    branches), then per branch committed since `since` and not an MR's: 1 call (status),
    1 more (open MRs) when it has no bot status, and 1 (the project) once a push is queued.
    """
    queued = 0
    default_branch: str | None = None
    for branch in await gitlab.recently_updated_branches(project_id, RECENT_BRANCHES):
        name = str(branch["name"])
        commit = branch["commit"]
        head = str(commit["id"])
        if _committed_before(commit, since):
            break  # newest first: every branch after this one is older still
        if name in merge_request_branches:
            continue
        if await gitlab.has_status(project_id, head, *status_names):
            continue
        if await gitlab.open_merge_requests_for_branch(project_id, name):
            continue  # the MR check owns that head (DESIGN.md, invariant 11)
        if default_branch is None:
            default_branch = str((await gitlab.project(project_id)).get("default_branch") or "")
        parents = commit.get("parent_ids") or []
        # Elsewhere, a zero `before` makes the push check judge the branch against the
        # default branch, as for a new branch.
        before = str(parents[0]) if name == default_branch and parents else ZERO_SHA
        event = PushEvent(
            project_id=project_id,
            branch=name,
            before=before,
            after=head,
            commits=(),
            total_commits_count=0,
            default_branch=default_branch,
            web_url="",
        )
        job = job_for(event)
        if await store.enqueue(job, seen_at=listed_at, now=time.time()) is not None:
            queued += 1
    return queued


def _committed_before(commit: Mapping[str, Any], since: datetime) -> bool:
    """Whether the commit's date is before `since`; an unreadable date is not."""
    try:
        moment = datetime.fromisoformat(str(commit.get("committed_date")))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < since
