"""PostgreSQL as the journal of several replicas: what one process's memory cannot promise,
the database must. Each store here is one replica (its own pool and replica name), all on
one real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from bot.store import QUEUED, RUNNING, NewJob, Store
from bot.store_postgres import MIGRATIONS, PostgresStore
from bot.stores import open_store

LEASE = 0.5


def _job(target: str = "1!1", head: str = "a" * 40) -> NewJob:
    return NewJob(target=target, kind="merge_request", head_sha=head, payload="{}")


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[list[Store]]:
    async with AsyncExitStack() as stack:
        # Started together: the migrations run once, under their lock.
        stores = await asyncio.gather(
            *(
                stack.enter_async_context(open_store(postgres_url, lease_seconds=LEASE))
                for _ in range(3)
            )
        )
        yield list(stores)


async def test_replicas_starting_together_apply_each_migration_once(
    replicas: list[Store],
) -> None:
    for store in replicas:
        assert isinstance(store, PostgresStore)
        assert await store.schema_version() == MIGRATIONS[-1][0]


async def test_one_delivery_sent_to_every_replica_at_once_is_accepted_once(
    replicas: list[Store],
) -> None:
    for round_number in range(20):
        key = f"delivery-{round_number}"
        answers = await asyncio.gather(
            *(store.accept(key, _job(), project_id=1, now=1.0) for store in replicas)
        )
        assert sorted(a.duplicate for a in answers) == [False, True, True]
    assert (await replicas[0].counts())["deliveries"] == 20


async def test_events_of_one_mr_accepted_at_once_leave_one_queued_job(
    replicas: list[Store],
) -> None:
    heads = ["a" * 40, "b" * 40, "c" * 40]
    for round_number in range(10):
        await asyncio.gather(
            *(
                store.accept(f"k{round_number}-{i}", _job(head=head), project_id=1, now=1.0)
                for i, (store, head) in enumerate(zip(replicas, heads, strict=True))
            )
        )
        counts = await replicas[0].counts()
        assert counts[QUEUED] == 1


async def test_replicas_claiming_at_once_never_run_one_target_twice(
    replicas: list[Store],
) -> None:
    for n in range(30):
        await replicas[n % 3].accept(f"k{n}", _job(target=f"1!{n % 10}"), project_id=1, now=1.0)
    claimed: list[int] = []
    while True:
        jobs = await asyncio.gather(
            *(store.claim(busy_targets=frozenset(), now=2.0) for store in replicas)
        )
        got = [job for job in jobs if job is not None]
        if not got:
            break
        claimed += [job.id for job in got]
        running_targets = [job.target for job in got]
        assert len(running_targets) == len(set(running_targets))
    # Ten targets, each one job (the newest; the rest were superseded), each claimed once.
    assert len(claimed) == len(set(claimed)) == 10
    assert (await replicas[0].counts())[RUNNING] == 10


async def test_a_dead_replicas_job_is_taken_over_after_its_lease(replicas: list[Store]) -> None:
    dead, alive = replicas[0], replicas[1]
    await dead.accept("k1", _job(), project_id=1, now=1.0)
    job = await dead.claim(busy_targets=frozenset(), now=1.0)
    assert job is not None
    # Within the lease, the job is the dead replica's: nobody else may run its target.
    assert await alive.claim(busy_targets=frozenset(), now=1.0 + LEASE / 2) is None
    taken = await alive.claim(busy_targets=frozenset(), now=1.0 + LEASE * 2)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    # The replica that lost its lease cannot finish the job any more; the new owner can.
    await dead.finish(job.id, "done", error=None, now=3.0)
    assert (await alive.counts())[RUNNING] == 1
    await alive.finish(job.id, "done", error=None, now=3.0)
    assert (await alive.counts())["done"] == 1


async def test_a_renewed_lease_keeps_the_job(replicas: list[Store]) -> None:
    owner, other = replicas[0], replicas[1]
    await owner.accept("k1", _job(), project_id=1, now=1.0)
    job = await owner.claim(busy_targets=frozenset(), now=1.0)
    assert job is not None
    await owner.renew([job.id], now=1.0 + LEASE * 0.9)
    assert await other.claim(busy_targets=frozenset(), now=1.0 + LEASE * 1.5) is None


async def test_a_newer_head_accepted_elsewhere_supersedes_a_running_job(
    replicas: list[Store],
) -> None:
    running, receiving = replicas[0], replicas[1]
    await running.accept("k1", _job(head="a" * 40), project_id=1, now=1.0)
    job = await running.claim(busy_targets=frozenset(), now=1.0)
    assert job is not None
    assert await running.superseded_among([job.id]) == frozenset()
    await receiving.accept("k2", _job(head="b" * 40), project_id=1, now=1.1)
    assert await running.superseded_among([job.id]) == {job.id}
    # The newer job waits for the superseded one to stop: one check per target at a time.
    assert await receiving.claim(busy_targets=frozenset(), now=1.2) is None
    await running.finish(job.id, "superseded", error=None, now=1.3)
    newer = await receiving.claim(busy_targets=frozenset(), now=1.3)
    assert newer is not None and newer.head_sha == "b" * 40


async def test_one_replica_holds_a_named_lease_at_a_time(replicas: list[Store]) -> None:
    held = await asyncio.gather(
        *(store.take_lease("catch-up", seconds=10, now=1.0) for store in replicas)
    )
    assert sorted(held) == [False, False, True]
    holder = replicas[held.index(True)]
    assert await holder.take_lease("catch-up", seconds=10, now=5.0)  # the holder renews
    other = replicas[(held.index(True) + 1) % 3]
    assert not await other.take_lease("catch-up", seconds=10, now=14.0)
    assert await other.take_lease("catch-up", seconds=10, now=16.0)  # expired: taken over


async def test_a_lease_given_up_is_free_at_once(replicas: list[Store]) -> None:
    holder, other = replicas[0], replicas[1]
    assert await holder.take_lease("catch-up", seconds=100, now=1.0)
    assert not await other.take_lease("catch-up", seconds=100, now=2.0)
    await holder.release_lease("catch-up")
    assert await other.take_lease("catch-up", seconds=100, now=3.0)


async def test_a_job_taken_over_stops_its_stalled_first_owner(replicas: list[Store]) -> None:
    stalled, other = replicas[0], replicas[1]
    await stalled.accept("k1", _job(), project_id=1, now=1.0)
    job = await stalled.claim(busy_targets=frozenset(), now=1.0)
    assert job is not None
    assert await stalled.superseded_among([job.id]) == frozenset()
    # The first owner stalled past its lease; the other replica takes the job over.
    taken = await other.claim(busy_targets=frozenset(), now=1.0 + LEASE * 2)
    assert taken is not None and taken.id == job.id
    assert await stalled.superseded_among([job.id]) == {job.id}
    assert await other.superseded_among([job.id]) == frozenset()


async def test_two_heads_reaching_two_replicas_at_once_leave_one_contested_job(
    replicas: list[Store],
) -> None:
    """Two heads of one MR accepted by two replicas in the same instant, many times over:
    whichever commits last replaces the other, and its claim says so, so its check confirms
    the MR's head rather than trusting the order the database saw."""
    for round_number in range(30):
        target = f"1!{round_number}"
        one, other = replicas[round_number % 3], replicas[(round_number + 1) % 3]
        await asyncio.gather(
            one.accept(f"a-{round_number}", _job(target, "a" * 40), project_id=1, now=1.0),
            other.accept(f"b-{round_number}", _job(target, "b" * 40), project_id=1, now=1.0),
        )
        claimed = await replicas[round_number % 3].claim(busy_targets=frozenset(), now=2.0)
        assert claimed is not None and claimed.target == target, round_number
        assert claimed.contested, round_number
        assert await other.claim(busy_targets=frozenset(), now=2.0) is None
        await replicas[round_number % 3].finish(claimed.id, "done", error=None, now=3.0)
