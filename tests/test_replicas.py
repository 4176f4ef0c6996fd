"""Three replicas of `compliance-bot serve` (real processes) on one PostgreSQL database,
behind a round-robin "load balancer": the guarantees of one process, cluster-wide."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx

from bot.report import NOTE_MARKER
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.postgres import PostgresServer
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for, wait_until_settled
from tests.test_durability import (
    assert_no_status_left_running,
    assert_the_faults_happened,
    unkind_gitlab,
)

MR_HOOK = "Merge Request Hook"
MRS = 60
STEPS = 5  # open + 4 pushes: 300 deliveries


def _replicas(fake: FakeGitLab, url: str) -> list[BotProcess]:
    # Short leases, so a killed replica's checks are taken over within the test's patience.
    return [
        BotProcess(fake, url, JOB_LEASE_SECONDS="2", CATCHUP_INTERVAL_SECONDS="1") for _ in range(3)
    ]


def _status_order_is_monotonic(fake: FakeGitLab, mr: MergeRequest, heads: list[str]) -> bool:
    """No status for an older head of the MR was posted after one for a newer head."""
    position = {sha: index for index, sha in enumerate(heads)}
    seen = -1
    for request in fake.calls("POST", "/statuses/"):
        sha = request.path.rsplit("/", 1)[-1]
        if sha not in position:
            continue
        if position[sha] < seen:
            return False
        seen = position[sha]
    return True


async def test_three_replicas_one_killed_lose_nothing_and_keep_one_note(
    fake: FakeGitLab, postgres_url: str
) -> None:
    project = compliant_project(fake)
    mrs: list[MergeRequest] = []
    heads: dict[int, list[str]] = {}
    for i in range(MRS):
        fake.commit(project.id, f"topic-{i}", message=f"feat: topic {i}")
        mr = fake.open_mr(project.id, source_branch=f"topic-{i}", description="Topic.")
        mrs.append(mr)
        heads[mr.iid] = [mr.head_sha]
    replicas = _replicas(fake, postgres_url)
    await asyncio.gather(*(replica.start() for replica in replicas))
    alive = list(replicas)
    balancer = itertools.count()
    sent = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for step in range(STEPS):
            for i, mr in enumerate(mrs):
                if step == 0:
                    payload = hook_for(mr)
                else:
                    old = mr.head_sha
                    bad = step == STEPS - 1 and i % 4 == 0
                    fake.commit(
                        project.id, f"topic-{i}", message="Not conventional" if bad else "fix: x"
                    )
                    heads[mr.iid].append(mr.head_sha)
                    payload = hook_for(mr, action="update", oldrev=old)
                if sent == (MRS * STEPS) // 2:
                    await replicas[0].kill()  # SIGKILL, with checks claimed and running
                    alive.remove(replicas[0])
                replica = alive[next(balancer) % len(alive)]
                response = await deliver(client, replica.url, MR_HOOK, payload, key=f"d-{sent}")
                assert response.status_code == 202
                sent += 1
    expected = [(mr, "failed" if i % 4 == 0 else "success") for i, mr in enumerate(mrs)]
    await wait_until_settled(fake, expected, seconds=180)
    logs = await asyncio.gather(*(replica.stop() for replica in alive))

    for mr, state in expected:
        assert fake.statuses(project.id, mr.head_sha)[-1]["status"] == state
        notes = [n for n in fake.notes(project.id, mr.iid) if NOTE_MARKER in str(n["body"])]
        assert len(notes) == 1, (mr.iid, len(notes))
        assert f"`{mr.head_sha[:8]}`" in str(notes[0]["body"])
    for mr in mrs:
        assert _status_order_is_monotonic(fake, mr, heads[mr.iid]), mr.iid
    assert all(fake.token not in log for log in logs)


async def test_one_delivery_sent_to_every_replica_at_once_runs_one_check(
    fake: FakeGitLab, postgres_url: str
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    replicas = _replicas(fake, postgres_url)
    await asyncio.gather(*(replica.start() for replica in replicas))
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(
            *(
                deliver(client, replica.url, MR_HOOK, hook_for(mr), key="one-delivery")
                for replica in replicas
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 200, 202]
    await wait_until_settled(fake, [(mr, "success")], seconds=30)
    await asyncio.gather(*(replica.stop() for replica in replicas))
    assert len(fake.calls("POST", f"/statuses/{mr.head_sha}")) == 1
    assert len(fake.calls("GET", f"/merge_requests/{mr.iid}/diffs")) == 1
    assert len([n for n in fake.notes(project.id, mr.iid) if NOTE_MARKER in str(n["body"])]) == 1


async def test_the_bot_outlives_a_postgresql_restart(
    fake: FakeGitLab, postgres: PostgresServer | None, postgres_url: str
) -> None:
    assert postgres is not None
    project = compliant_project(fake)
    fake.commit(project.id, "before", message="feat: before")
    before = fake.open_mr(project.id, source_branch="before", description="Before.")
    fake.commit(project.id, "after", message="feat: after")
    after = fake.open_mr(project.id, source_branch="after", description="After.")
    bot = BotProcess(fake, postgres_url, JOB_LEASE_SECONDS="2")
    await bot.start()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await deliver(client, bot.url, MR_HOOK, hook_for(before))).status_code == 202
        await wait_until_settled(fake, [(before, "success")], seconds=30)

        postgres.stop()
        try:
            # The journal is down: the bot cannot promise to keep the event, so it does not
            # answer 2xx (GitLab shows the delivery failed), and it does not crash.
            down = await deliver(client, bot.url, MR_HOOK, hook_for(after))
            assert down.status_code >= 500
            await bot.wait_for_log("the journal failed")  # the workers' claims fail meanwhile
        finally:
            postgres.resume()

        # The pool reconnects in the background, with a backoff that grew while the server
        # was down: the bot is ready again when /readyz says so, not after a fixed delay.
        assert await bot.wait_ready(120)
        answer = await deliver(client, bot.url, MR_HOOK, hook_for(after))
        assert answer.status_code == 202
        await wait_until_settled(fake, [(after, "success")], seconds=30)
    log = await bot.stop()
    assert "the journal failed" in log  # the workers saw it, and carried on
    assert fake.token not in log


TWIN_MRS = 20
TWIN_ROUNDS = 2


async def test_two_heads_of_one_mr_reaching_two_replicas_at_once_end_on_the_newest(
    fake: FakeGitLab, postgres_url: str
) -> None:
    """Each MR gets two new heads whose deliveries reach two different replicas in the same
    instant, twice over, while GitLab faults. Whichever replica journals which head first,
    every MR ends with its verdict on the newest head and exactly one note naming it."""
    unkind_gitlab(fake, 1520)
    project = compliant_project(fake)
    mrs: list[MergeRequest] = []
    heads: dict[int, list[str]] = {}
    for i in range(TWIN_MRS):
        fake.commit(project.id, f"topic-{i}", message=f"feat: topic {i}")
        mr = fake.open_mr(project.id, source_branch=f"topic-{i}", description="Topic.")
        mrs.append(mr)
        heads[mr.iid] = [mr.head_sha]
    # Catch-up at its default interval: it must not be what finishes the newest heads.
    replicas = [BotProcess(fake, postgres_url, JOB_LEASE_SECONDS="2") for _ in range(3)]
    await asyncio.gather(*(replica.start() for replica in replicas))
    async with httpx.AsyncClient(timeout=30) as client:
        opened = [
            deliver(client, replicas[i % 3].url, MR_HOOK, hook_for(mr)) for i, mr in enumerate(mrs)
        ]
        assert {a.status_code for a in await asyncio.gather(*opened)} == {202}
        for round_ in range(TWIN_ROUNDS):
            twins = []
            for i, mr in enumerate(mrs):
                first = mr.head_sha
                older = fake.commit(project.id, f"topic-{i}", message=f"fix: round {round_}")
                bad = round_ == TWIN_ROUNDS - 1 and i % 4 == 0
                newest = fake.commit(
                    project.id, f"topic-{i}", message="Not conventional" if bad else "fix: more"
                )
                heads[mr.iid] += [older, newest]
                one, other = replicas[i % 3], replicas[(i + 1) % 3]
                twins += [
                    deliver(client, one.url, MR_HOOK, _push(mr, first, older)),
                    deliver(client, other.url, MR_HOOK, _push(mr, older, newest)),
                ]
            answers = await asyncio.gather(*twins)  # every pair at the same instant
            assert {a.status_code for a in answers} == {202}
    last_delivery = time.monotonic()
    expected = [(mr, "failed" if i % 4 == 0 else "success") for i, mr in enumerate(mrs)]
    await wait_until_settled(fake, expected, seconds=120)
    settled_after = time.monotonic() - last_delivery
    logs = await asyncio.gather(*(replica.stop() for replica in replicas))

    for mr, state in expected:
        assert fake.statuses(project.id, mr.head_sha)[-1]["status"] == state
        notes = [n for n in fake.notes(project.id, mr.iid) if NOTE_MARKER in str(n["body"])]
        assert len(notes) == 1, (mr.iid, len(notes))
        assert f"`{mr.head_sha[:8]}`" in str(notes[0]["body"])
    assert_no_status_left_running(fake, project.id, heads)
    assert_the_faults_happened(fake)
    assert all(fake.token not in log for log in logs)
    print(f"\n{TWIN_MRS} MRs x {TWIN_ROUNDS} twin pushes settled {settled_after:.1f}s after")


def _push(mr: MergeRequest, before: str, after: str) -> dict[str, object]:
    return hook_for(mr, action="update", oldrev=before, head_sha=after)
