"""Bounded growth and honest health (issue 16, item 8).

- Failed jobs and projects GitLab does not show the bot are pruned after the retention.
- A project whose merge request listing answers 404 or 403 drops out of catch-up until its
  next delivery.
- Another process holding the SQLite journal's lock gets deliveries a quick 503, never
  freezes the event loop, and turns `/readyz` unready until the lock is gone; so does a
  journal that cannot be written at all (a file size limit standing in for a full disk).

Store behaviour runs on both engines (`journal`); the lock and the full disk are SQLite's.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

from bot.store import NewJob, open_store
from tests.conftest import running_bot
from tests.fake_gitlab import FakeGitLab
from tests.payloads import merge_request_hook
from tests.scenarios import compliant_project, hook_for, wait_until_settled

MR_HOOK = "Merge Request Hook"
UNKNOWN = 300
FIRST_UNKNOWN_ID = 900_000
LISTING = re.compile(r"^/api/v4/projects/(\d+)/merge_requests$")


def _job(target: str = "1!1", head: str = "a" * 40) -> NewJob:
    return NewJob(target=target, kind="merge_request", head_sha=head, payload="{}")


def _hook_of_unknown_project(project_id: int) -> dict[str, object]:
    """A well-formed MR hook for a project id GitLab does not know (or hides from the bot)."""
    return merge_request_hook(
        project_id=project_id,
        iid=1,
        head_sha="f" * 40,
        title="Add a feature",
        description="Feature.",
        source_branch="feature",
        target_branch="main",
        web_url=f"https://gitlab.example.com/ghost/{project_id}/-/merge_requests/1",
    )


def _catch_up_listings(fake: FakeGitLab) -> Counter[int]:
    """Catch-up's listings of open MRs (`updated_after`), per project id, as GitLab saw them."""
    listed: Counter[int] = Counter()
    for request in fake.calls("GET", "/merge_requests"):
        match = LISTING.match(request.path)
        if match and "updated_after" in request.query:
            listed[int(match.group(1))] += 1
    return listed


async def _wait_for_passes(fake: FakeGitLab, project_id: int, passes: int) -> None:
    """Wait until catch-up has listed `project_id` `passes` more times: each pass lists
    every project it does not skip, one after the other."""
    target = _catch_up_listings(fake)[project_id] + passes
    deadline = time.monotonic() + 60
    while _catch_up_listings(fake)[project_id] < target:
        assert time.monotonic() < deadline, _catch_up_listings(fake)[project_id]
        await asyncio.sleep(0.05)


# -- the store, on both engines -------------------------------------------------------------


async def test_prune_drops_failed_jobs_and_unreachable_projects_after_the_retention(
    journal: str,
) -> None:
    async with open_store(journal, lease_seconds=0.5) as store:
        for key, target, project in (("k1", "1!1", 1), ("k2", "2!1", 2), ("k3", "3!1", 3)):
            await store.accept(key, _job(target=target), project_id=project, now=1.0)
        for _ in range(2):
            job = await store.claim(busy_targets=frozenset(), now=2.0)
            assert job is not None
            await store.finish(job.id, "failed", error="GitLab answered 404", now=2.0)
        # Project 2 answered 404 at catch-up; project 3 did too, but has had a delivery since.
        await store.mark_unreachable(2, as_of=1.0, now=3.0)
        await store.mark_unreachable(3, as_of=1.0, now=3.0)
        await store.accept("k4", None, project_id=3, now=4.0)

        await store.prune(keys_older_than=0.0, jobs_older_than=3.5)
        counts = await store.counts()
        assert counts.get("failed", 0) == 0
        assert counts["queued"] == 1  # never pruned, however old
        assert counts["projects"] == 2  # project 1 (quiet but reachable) and 3 stay
        assert sorted(p for p, _ in await store.projects_seen()) == [1, 3]


async def test_an_unreachable_project_is_skipped_until_its_next_delivery(journal: str) -> None:
    async with open_store(journal, lease_seconds=0.5) as store:
        await store.accept("k1", None, project_id=5, now=10.0)
        await store.accept("k2", None, project_id=6, now=10.0)
        await store.mark_unreachable(5, as_of=10.0, now=11.0)
        assert await store.projects_seen() == [(6, 10.0)]
        # A mark made from a listing older than the newest delivery changes nothing.
        await store.accept("k3", None, project_id=6, now=12.0)
        await store.mark_unreachable(6, as_of=10.0, now=13.0)
        await store.accept("k4", None, project_id=5, now=14.0)
        assert sorted(await store.projects_seen()) == [(5, 14.0), (6, 12.0)]
        # The forgotten mark is cleared by the next prune, the projects stay.
        await store.prune(keys_older_than=0.0, jobs_older_than=100.0)
        assert (await store.counts())["projects"] == 2
        assert await store.writable()
        assert await store.writable()


# -- the server, over real HTTP -------------------------------------------------------------


async def test_projects_gitlab_does_not_show_drop_out_of_catch_up(
    fake: FakeGitLab, journal: str
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: feature")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    hidden = compliant_project(fake, "acme/hidden")
    fake.commit(hidden.id, "feature", message="feat: feature")
    hidden_mr = fake.open_mr(hidden.id, source_branch="feature", description="Feature.")
    # lib/api/merge_requests.rb, `get ":id/merge_requests"`: `authorize! :read_merge_request,
    # user_project` answers 403 to a token that sees the project but not its merge requests.
    fake.fail("GET", rf"^/api/v4/projects/{hidden.id}/merge_requests$", 403)
    async with running_bot(fake, compliance_db=journal, catchup_interval_seconds=0.3) as bot:
        assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
        assert (await bot.send(MR_HOOK, hook_for(hidden_mr))).status_code == 202
        unknown = range(FIRST_UNKNOWN_ID, FIRST_UNKNOWN_ID + UNKNOWN)
        for project_id in unknown:
            response = await bot.send(MR_HOOK, _hook_of_unknown_project(project_id))
            assert response.status_code == 202
        started = time.monotonic()
        await _wait_for_passes(fake, project.id, 4)
        seconds = time.monotonic() - started
        listed = _catch_up_listings(fake)
        unknown_listings = sum(listed[p] for p in unknown)
        not_found = sum(
            1
            for r in fake.calls("GET", "/merge_requests")
            if r.status == 404 and "updated_after" in r.query and LISTING.match(r.path)
        )
        print(
            f"\n{UNKNOWN} unknown project ids: {unknown_listings} catch-up listings "
            f"({not_found} answered 404) in 4 passes, {seconds:.1f} s"
        )
        assert all(listed[p] == 1 for p in unknown), Counter(listed[p] for p in unknown)
        assert listed[hidden.id] == 1

        # A new delivery for a project brings it back into catch-up, once more.
        ghost = FIRST_UNKNOWN_ID + 7
        assert (await bot.send(MR_HOOK, _hook_of_unknown_project(ghost))).status_code == 202
        await _wait_for_passes(fake, project.id, 3)
        listed = _catch_up_listings(fake)
        assert listed[ghost] == 2
        assert listed[hidden.id] == 1
        assert sum(listed[p] for p in unknown) == UNKNOWN + 1


async def test_failed_jobs_and_unknown_projects_leave_the_journal(
    fake: FakeGitLab, journal: str
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: feature")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    ghost = FIRST_UNKNOWN_ID
    async with running_bot(
        fake,
        compliance_db=journal,
        catchup_interval_seconds=0.2,
        retry_failed_attempts=1,
        journal_retention_days=1 / 86400,  # a second
    ) as bot:
        assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
        assert (await bot.send(MR_HOOK, _hook_of_unknown_project(ghost))).status_code == 202
        store = bot.app.state.runtime.store
        deadline = time.monotonic() + 60
        while True:
            counts = await store.counts()
            # GitLab saw the unknown project's check fail and catch-up's listing of it.
            gitlab_saw_it = _catch_up_listings(fake)[ghost] >= 1 and any(
                r.status == 404 for r in fake.calls(path_contains=f"/projects/{ghost}/")
            )
            if gitlab_saw_it and counts.get("failed", 0) == 0 and counts["projects"] == 1:
                break
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.1)
        # The reachable project stays, however quiet, so catch-up keeps covering it.
        assert [p for p, _ in await store.projects_seen()] == [project.id]
        await wait_until_settled(fake, [(mr, "success")], seconds=30)
