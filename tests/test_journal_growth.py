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
import resource
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bot.store import NewJob
from bot.stores import open_store
from tests.conftest import running_bot
from tests.fake_gitlab import FakeGitLab
from tests.payloads import merge_request_hook
from tests.processes import BotProcess, deliver, wait_for_readyz
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


async def test_a_locked_sqlite_journal_fails_fast_and_leaves_the_loop_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    async with open_store(str(path)) as store:
        await store.accept("k1", _job(), project_id=1, now=1.0)
        other = sqlite3.connect(path, isolation_level=None)  # as another process would
        other.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        loop = asyncio.get_running_loop()
        ticker = loop.create_task(tick())
        # A worker's write, unlike a delivery, waits the lock out: it holds up nothing else.
        background = loop.create_task(store.save_snapshot("1!1", "{}", now=2.0))
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store.accept("k2", _job(head="b" * 40), project_id=1, now=2.0)
        waited = time.monotonic() - started
        ticker.cancel()
        assert not await store.writable()
        await asyncio.wait({background}, timeout=0.5)
        assert not background.done()
        other.execute("ROLLBACK")
        other.close()
        await background
        assert await store.load_snapshot("1!1") == "{}"
        print(f"\nlocked journal: accept failed after {waited * 1e3:.0f} ms, {ticks} loop ticks")
        assert waited < 2.0
        assert ticks >= 10  # the loop ran other work meanwhile
        # The lock is gone: the same delivery is accepted, nothing was half written.
        assert await store.writable()
        assert not (await store.accept("k2", _job(head="b" * 40), project_id=1, now=3.0)).duplicate
        assert (await store.counts())["queued"] == 1


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


async def _hold_exclusive_lock(path: Path) -> asyncio.subprocess.Process:
    """Another process (a backup, an `sqlite3` shell) holding the journal's write lock."""
    script = (
        "import sqlite3, sys\n"
        f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "db.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "db.execute('ROLLBACK')\n"
    )
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"locked\n"
    return holder


async def _release(holder: asyncio.subprocess.Process) -> None:
    assert holder.stdin is not None
    holder.stdin.write(b"\n")
    await holder.stdin.drain()
    assert await holder.wait() == 0


async def test_a_journal_locked_by_another_process_gets_quick_503s_and_a_free_loop(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: feature")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    db = tmp_path / "journal.db"
    bot = BotProcess(fake, db)
    await bot.start()
    try:
        holder = await _hold_exclusive_lock(db)
        async with httpx.AsyncClient(timeout=30) as client:

            async def timed_delivery() -> tuple[httpx.Response, float]:
                started = time.monotonic()
                answer = await deliver(client, bot.url, MR_HOOK, hook_for(mr), key="while-locked")
                return answer, time.monotonic() - started

            delivery = asyncio.get_running_loop().create_task(timed_delivery())
            health: list[float] = []
            while not delivery.done() or len(health) < 20:
                asked = time.monotonic()
                assert (await client.get(f"{bot.url}/healthz")).status_code == 200
                health.append(time.monotonic() - asked)
                if len(health) == 1 or delivery.done():
                    await asyncio.sleep(0.05)  # spread the probes over the lock's time
            answer, delivery_seconds = await delivery
            readyz_locked = (await client.get(f"{bot.url}/readyz")).status_code
            await _release(holder)
            print(
                f"\nlocked journal: webhook answered {answer.status_code} after "
                f"{delivery_seconds * 1e3:.0f} ms; /healthz slowest {max(health) * 1e3:.0f} ms "
                f"of {len(health)}"
            )
            assert 500 <= answer.status_code < 600, answer.text
            assert delivery_seconds < 3.0
            assert max(health) < 1.5
            assert readyz_locked == 503

            await wait_for_readyz(client, bot.url)
            # The sender delivers again once the journal is free (GitLab's "Resend request").
            again = await deliver(client, bot.url, MR_HOOK, hook_for(mr), key="while-locked")
            assert again.status_code == 202  # the 503'd delivery was never journaled
            await wait_until_settled(fake, [(mr, "success")], seconds=30)
    finally:
        log = await bot.stop()
    assert fake.token not in log


async def test_readyz_is_unready_while_the_journal_cannot_be_written(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: feature")
    mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    assert bot.process is not None
    pid = bot.process.pid
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            # A full disk, as the bot sees it: every write to a file fails (EFBIG, which
            # SQLite reports as a disk I/O error, as it does ENOSPC). Logs go to a pipe.
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
            try:
                readyz = (await client.get(f"{bot.url}/readyz")).status_code
                healthz = (await client.get(f"{bot.url}/healthz")).status_code
                answer = await deliver(client, bot.url, MR_HOOK, hook_for(mr), key="disk-full")
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
            assert (readyz, healthz) == (503, 200)
            assert 500 <= answer.status_code < 600, answer.text
            await wait_for_readyz(client, bot.url)
            again = await deliver(client, bot.url, MR_HOOK, hook_for(mr), key="disk-full")
            assert again.status_code == 202
            await wait_until_settled(fake, [(mr, "success")], seconds=30)
    finally:
        await bot.stop()
