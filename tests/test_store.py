"""The journal, on both engines: a real SQLite file and a real PostgreSQL database.

PostgreSQL leases last half a second here, so a job left running by a "crash" (a store
closed mid-job) is taken back by a `replay_unfinished` a second later, as on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.store import NewJob, Store
from bot.stores import open_store

LEASE = 0.5


@asynccontextmanager
async def _opened(journal: str) -> AsyncIterator[Store]:
    async with open_store(journal, lease_seconds=LEASE) as store:
        yield store


def _job(target: str = "1!1", head: str = "a" * 40) -> NewJob:
    return NewJob(target=target, kind="merge_request", head_sha=head, payload="{}")


async def test_delivery_is_journaled_once(journal: str) -> None:
    async with _opened(journal) as store:
        first = await store.accept("k1", _job(), project_id=1, now=1.0)
        again = await store.accept("k1", _job(), project_id=1, now=2.0)
        assert not first.duplicate and first.job_id is not None
        assert again.duplicate and again.job_id is None
        assert (await store.counts())["queued"] == 1


async def test_everything_survives_a_reopen(journal: str) -> None:
    async with _opened(journal) as store:
        await store.accept("k1", _job(), project_id=7, now=1.0)
        await store.claim(busy_targets=frozenset(), now=2.0)
    # As after a crash: the store closed with the job running.
    async with _opened(journal) as reopened:
        assert (await reopened.accept("k1", _job(), project_id=7, now=3.0)).duplicate
        assert await reopened.replay_unfinished(now=4.0) == 1
        job = await reopened.claim(busy_targets=frozenset(), now=5.0)
        assert job is not None and job.attempts == 2
        assert await reopened.projects_seen() == [(7, 1.0)]


async def test_a_project_is_remembered_by_its_latest_event(journal: str) -> None:
    # Catch-up lists a project's MRs updated since its last event; a delivery journaled out
    # of order (a replica whose clock lags, a retried accept) must not move that back.
    async with _opened(journal) as store:
        await store.accept("k1", _job(), project_id=7, now=20.0)
        await store.accept("k2", _job(target="7!2"), project_id=7, now=10.0)
        assert await store.projects_seen() == [(7, 20.0)]


async def test_newer_head_supersedes_the_queued_job(journal: str) -> None:
    async with _opened(journal) as store:
        old = await store.accept("k1", _job(head="a" * 40), project_id=1, now=1.0)
        new = await store.accept("k2", _job(head="b" * 40), project_id=1, now=2.0)
        assert new.superseded == (old.job_id,)
        other = await store.accept("k3", _job(target="1!2"), project_id=1, now=3.0)
        assert other.superseded == ()
        counts = await store.counts()
        assert (counts["queued"], counts["superseded"]) == (2, 1)
        claimed = await store.claim(busy_targets=frozenset(), now=4.0)
        assert claimed is not None and claimed.head_sha == "b" * 40


async def test_claim_skips_targets_being_checked(journal: str) -> None:
    async with _opened(journal) as store:
        await store.accept("k1", _job(target="1!1"), project_id=1, now=1.0)
        await store.accept("k2", _job(target="1!2"), project_id=1, now=2.0)
        job = await store.claim(busy_targets=frozenset({"1!1"}), now=3.0)
        assert job is not None and job.target == "1!2"
        assert await store.claim(busy_targets=frozenset({"1!1"}), now=3.0) is None


async def test_crash_replay_prefers_a_newer_queued_job(journal: str) -> None:
    async with _opened(journal) as store:
        await store.accept("k1", _job(head="a" * 40), project_id=1, now=1.0)
        await store.claim(busy_targets=frozenset(), now=2.0)
        await store.accept("k2", _job(head="b" * 40), project_id=1, now=3.0)
        assert await store.replay_unfinished(now=4.0) == 1
        counts = await store.counts()
        assert (counts.get("running", 0), counts["superseded"], counts["queued"]) == (0, 1, 1)


async def test_failed_jobs_are_retried_unless_something_newer_exists(journal: str) -> None:
    async with _opened(journal) as store:
        await store.accept("k1", _job(target="1!1"), project_id=1, now=1.0)
        await store.accept("k2", _job(target="1!2"), project_id=1, now=1.0)
        for _ in range(2):
            job = await store.claim(busy_targets=frozenset(), now=2.0)
            assert job is not None
            await store.finish(job.id, "failed", error="GitLab down", now=2.0)
        await store.accept("k3", _job(target="1!2", head="c" * 40), project_id=1, now=3.0)
        assert await store.retry_failed(older_than=10.0, max_attempts=5, now=11.0) == 1
        assert await store.retry_failed(older_than=10.0, max_attempts=1, now=11.0) == 0


async def test_old_keys_and_finished_jobs_are_pruned(journal: str) -> None:
    async with _opened(journal) as store:
        await store.accept("old", _job(), project_id=1, now=1.0)
        job = await store.claim(busy_targets=frozenset(), now=1.0)
        assert job is not None
        await store.finish(job.id, "done", error=None, now=1.0)
        await store.prune(keys_older_than=100.0, jobs_older_than=100.0)
        assert not (await store.accept("old", None, project_id=1, now=200.0)).duplicate
        assert (await store.counts()).get("done", 0) == 0
        assert await store.writable()


async def test_a_job_that_replaced_another_head_is_claimed_contested(journal: str) -> None:
    """Deliveries are journaled in any order, so a job that replaced an older job of its
    target with another head may carry the older head: its check confirms the MR's head."""
    async with _opened(journal) as store:
        await store.accept("k1", _job(head="a" * 40), project_id=1, now=1.0)
        alone = await store.claim(busy_targets=frozenset(), now=2.0)
        assert alone is not None and not alone.contested
        await store.finish(alone.id, "done", error=None, now=3.0)
        # A queued job replaced by another head, in whichever order they came.
        await store.accept("k2", _job(head="c" * 40), project_id=1, now=4.0)
        await store.accept("k3", _job(head="b" * 40), project_id=1, now=5.0)
        replaced = await store.claim(busy_targets=frozenset(), now=6.0)
        assert replaced is not None and replaced.head_sha == "b" * 40 and replaced.contested
        # A running job stopped for another head's job, which was accepted meanwhile.
        await store.accept("k4", _job(head="d" * 40), project_id=1, now=7.0)
        await store.finish(replaced.id, "superseded", error=None, now=8.0)
        successor = await store.claim(busy_targets=frozenset(), now=9.0)
        assert successor is not None and successor.head_sha == "d" * 40 and successor.contested
        # A redelivery of the same head replaced nothing with another head.
        await store.finish(successor.id, "done", error=None, now=10.0)
        await store.accept("k5", _job(head="e" * 40), project_id=1, now=11.0)
        await store.accept("k6", _job(head="e" * 40), project_id=1, now=12.0)
        same = await store.claim(busy_targets=frozenset(), now=13.0)
        assert same is not None and not same.contested


async def test_deliveries_accepted_at_once_are_each_journaled_in_order(journal: str) -> None:
    """Concurrent deliveries (one group commit on SQLite) get the answers they would get
    one by one: a repeated key is a duplicate, a newer head supersedes the older, and every
    accepted one is on disk when its answer comes."""
    async with _opened(journal) as store:
        answers = await asyncio.gather(
            *(
                store.accept(f"k{i}", _job(target=f"1!{i}"), project_id=1, now=1.0)
                for i in range(20)
            ),
            store.accept("k0", _job(target="1!0"), project_id=1, now=1.0),
            store.accept("k-new", _job(target="1!1", head="b" * 40), project_id=1, now=2.0),
        )
        *firsts, repeated, newer = answers
        assert not any(a.duplicate for a in firsts) and repeated.duplicate
        assert newer.superseded == (firsts[1].job_id,)
        assert len({a.job_id for a in firsts}) == 20
    async with _opened(journal) as reopened:
        counts = await reopened.counts()
        assert (counts["queued"], counts["superseded"]) == (20, 1)
