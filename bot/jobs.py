"""Background work on the app's one event loop, fed from the durable journal.

A fixed number of worker tasks claim jobs from the store, one job per target at a time
(project + MR, or project + branch). The backlog lives on disk, so a burst costs no memory.
When a newer head of a target arrives, the store supersedes its queued job and the runner
cancels a running one for an older head, which then posts nothing more.

The runner holds a reference to every task, logs every failure, and on shutdown lets running
jobs finish within a grace period; what is left goes back to the queue for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from bot.errors import Retryable
from bot.metrics import Metrics
from bot.store import DONE, FAILED, SUPERSEDED, JobRecord, NewJob, Store
from bot.webhook import Event, JobTarget, event_head, event_kind, event_target, event_to_json

log = logging.getLogger(__name__)

RunJob = Callable[[JobRecord], Coroutine[Any, Any, None]]

# Workers also poll this often, in case a wake-up was missed, or (with several replicas)
# a job was queued by another process.
IDLE_POLL_SECONDS = 1.0
# How often running jobs are checked against the store for a newer head accepted by another
# replica, and their leases renewed (at a third of the lease, so one missed beat is harmless).
HEARTBEAT_SECONDS = 1.0


def job_for(event: Event, *, event_uuid: str | None = None) -> NewJob:
    """The journal's record of an event, for a webhook delivery and catch-up alike."""
    return NewJob(
        target=str(event_target(event)),
        kind=event_kind(event),
        head_sha=event_head(event),
        payload=event_to_json(event),
        event_uuid=event_uuid,
    )


@dataclass
class Stats:
    """Counts since start, for the logs, the closing figures and (later) metrics."""

    accepted: int = 0
    duplicates: int = 0
    jobs_run: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    superseded: int = 0
    released: int = 0


@dataclass
class _Running:
    job: JobRecord
    task: asyncio.Task[None]
    superseded: bool = False
    # Superseded because another replica took the job over (its lease ran out while this
    # one stalled), not because of a newer head: that replica checks this same head.
    lost: bool = False


class Superseded(Exception):
    """Raised at a checkpoint of a job whose target got a newer head meanwhile."""


# The job the current task works for, so a check can ask whether it is still wanted.
_current: contextvars.ContextVar[_Running | None] = contextvars.ContextVar(
    "current_job", default=None
)


def superseded_by_newer_head() -> bool:
    """Whether the current job stopped because its target has a newer head (so its own
    head's `running` status is left to no one), rather than because another replica took
    this very job over."""
    running = _current.get()
    return running is not None and running.superseded and not running.lost


def ensure_current() -> None:
    """A checkpoint: stop here, posting nothing more, if a newer head superseded this job.

    Superseding is cooperative: cancelling a task in the middle of a GitLab call would also
    throw away that call's pooled connection, and a burst of pushes would open connections
    past the pool size. Checks call this before each write instead."""
    running = _current.get()
    if running is not None and running.superseded:
        raise Superseded(running.job.head_sha)


@dataclass
class JobRunner:
    store: Store
    run: RunJob
    workers: int = 8
    grace_seconds: float = 20.0
    metrics: Metrics | None = None
    lease_seconds: float = 30.0
    stats: Stats = field(default_factory=Stats)
    _running: dict[str, _Running] = field(default_factory=dict, init=False)
    _workers: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    # Idle workers, each waiting on its own future: a new job wakes one of them, not all
    # (with PostgreSQL every wasted claim is a round trip).
    _idle: deque[asyncio.Future[None]] = field(default_factory=deque, init=False)
    _missed_wake: bool = field(default=False, init=False)
    _closing: bool = field(default=False, init=False)
    _heartbeat: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def closing(self) -> bool:
        return self._closing

    async def start(self) -> None:
        replayed = await self.store.replay_unfinished(now=time.time())
        if replayed:
            log.info("replaying unfinished jobs", extra={"queued": replayed})
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(), name=f"worker {i}") for i in range(self.workers)
        ]
        self._heartbeat = loop.create_task(self._beat(), name="heartbeat")

    async def _beat(self) -> None:
        """Keep the running jobs' leases alive, and stop those another replica superseded."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            running = {r.job.id: r for r in self._running.values()}
            if not running:
                continue
            try:
                superseded = await self.store.superseded_among(list(running))
                lost = await self.store.lost_among(list(superseded)) if superseded else ()
                for job_id in superseded:
                    running[job_id].lost = job_id in lost
                    running[job_id].superseded = True
                if time.monotonic() - last_renewal >= self.lease_seconds / 3:
                    last_renewal = time.monotonic()
                    await self.store.renew(list(running), now=time.time())
            except Exception:
                # The store is unreachable for a moment; the next beat tries again, and the
                # lease outlasts a few missed beats.
                log.exception("heartbeat failed")

    def wake(self) -> None:
        """A job may be claimable: wake one idle worker (or the next one to go idle)."""
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._missed_wake = True

    def _wake_all(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def supersede_running(self, target: str, head_sha: str) -> None:
        """A newer head arrived: a running check of an older head stops at its next
        checkpoint (`ensure_current`) and posts nothing after it."""
        running = self._running.get(target)
        if running is not None and head_sha and running.job.head_sha != head_sha:
            running.superseded = True

    async def _work(self) -> None:
        while not self._closing:
            try:
                await self._work_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store failed (PostgreSQL restarting, a disk error). The worker must
                # outlive it: what was claimed stays `running` and comes back when its lease
                # expires or on the next start; nothing accepted is lost.
                log.exception("worker: the journal failed; trying again")
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _work_once(self) -> None:
        job = await self.store.claim(busy_targets=frozenset(self._running), now=time.time())
        if job is None:
            if self._missed_wake:
                self._missed_wake = False
                return
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await asyncio.wait_for(waiter, IDLE_POLL_SECONDS)
            except TimeoutError:
                # Polled anyway: another replica may have queued a job.
                with contextlib.suppress(ValueError):
                    self._idle.remove(waiter)
            return
        await self._run_one(job)

    async def _run_one(self, job: JobRecord) -> None:
        context = contextvars.copy_context()
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self.run(job), name=f"job {job.id}", context=context
        )
        running = _Running(job, task)
        context.run(_current.set, running)
        self._running[job.target] = running
        self.stats.jobs_run += 1
        started = time.monotonic()
        task_superseded = False
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                # The worker itself was cancelled (shutdown past the grace period).
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                await self.store.release(job.id, now=time.time())
                self.stats.released += 1
                raise
        except Superseded:
            task_superseded = True
        except Retryable as exc:
            await self.store.finish(job.id, FAILED, error=str(exc), now=time.time())
            self.stats.jobs_failed += 1
            self._observe(job, "failed", started)
            log.warning(
                "job failed; it will run again",
                extra={**_job_fields(job), "outcome": "failed", "error": str(exc)},
            )
            return
        except Exception as exc:
            await self.store.finish(job.id, FAILED, error=repr(exc), now=time.time())
            self.stats.jobs_failed += 1
            self._observe(job, "crashed", started)
            log.exception("job crashed", extra={**_job_fields(job), "outcome": "crashed"})
            return
        finally:
            self._running.pop(job.target, None)
            self.wake()  # the target is free again: a queued job of it may run
        if task_superseded or task.cancelled():
            if not running.superseded:
                await self.store.release(job.id, now=time.time())
                self.stats.released += 1
                return
            await self.store.finish(job.id, SUPERSEDED, error=None, now=time.time())
            self.stats.superseded += 1
            if self.metrics is not None:
                self.metrics.superseded.inc()
            self._observe(job, "superseded", started)
            log.info("job superseded", extra={**_job_fields(job), "outcome": "superseded"})
            return
        await self.store.finish(job.id, DONE, error=None, now=time.time())
        self.stats.jobs_done += 1
        seconds = self._observe(job, "done", started)
        log.info(
            "job done", extra={**_job_fields(job), "outcome": "done", "duration_ms": seconds * 1e3}
        )

    def _observe(self, job: JobRecord, outcome: str, started: float) -> float:
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.check_duration.labels(job.kind, outcome).observe(seconds)
        return seconds

    async def queue_depth(self) -> int:
        return (await self.store.counts()).get("queued", 0)

    async def idle(self, *, poll: float = 0.01) -> None:
        """Wait until nothing is queued or running (tests, benchmarks)."""
        while True:
            counts = await self.store.counts()
            if not self._running and not counts.get("queued") and not counts.get("running"):
                return
            await asyncio.sleep(poll)

    async def aclose(self) -> None:
        """Stop taking jobs, let running ones finish within the grace period, requeue the rest."""
        self._closing = True
        self._wake_all()
        running = [r.task for r in self._running.values()]
        if running:
            await asyncio.wait(running, timeout=self.grace_seconds)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)


def _job_fields(job: JobRecord) -> dict[str, object]:
    """What a job's log line says about it: the job, its delivery, its project and MR."""
    target = JobTarget.parse(job.target)
    fields: dict[str, object] = {
        "job": job.id,
        "kind": job.kind,
        "delivery": job.event_uuid,
        "project": str(target.project_id),
        "sha": job.head_sha[:12],
    }
    if target.merge_request_iid is not None:
        fields["mr"] = str(target.merge_request_iid)
    return fields
