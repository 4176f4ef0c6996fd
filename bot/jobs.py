"""Background work on the app's one event loop: deduplication, coalescing, bounded workers.

The webhook answers first; the check runs afterwards in a task this runner owns. It holds a
reference to every task (so none is garbage-collected mid-flight), logs every exception, and
cancels what is left at shutdown.

One target (project + MR, or project + branch) has at most one check running. An event that
arrives meanwhile waits in the target's single pending slot; a newer event replaces an older
pending one, since only the newest head matters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class SeenKeys:
    """Idempotency keys of accepted deliveries, bounded in count and in age."""

    def __init__(self, *, capacity: int = 100_000, ttl_seconds: float = 7 * 24 * 3600) -> None:
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl_seconds

    def add(self, key: str, *, now: float | None = None) -> bool:
        """Record `key`; False when it was already seen (a redelivery)."""
        now = time.monotonic() if now is None else now
        while self._keys:
            oldest, seen_at = next(iter(self._keys.items()))
            if now - seen_at < self._ttl and len(self._keys) < self._capacity:
                break
            del self._keys[oldest]
        if key in self._keys:
            return False
        self._keys[key] = now
        return True


class JobRunner:
    def __init__(self, *, workers: int) -> None:
        self._slots = asyncio.Semaphore(workers)
        self._pending: dict[str, Job] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def busy_targets(self) -> int:
        return len(self._drainers)

    def submit(self, target: str, job: Job) -> None:
        if self._closing:
            raise RuntimeError("the job runner is shutting down")
        self._pending[target] = job
        if target not in self._drainers:
            task = asyncio.get_running_loop().create_task(
                self._drain(target), name=f"check {target}"
            )
            self._drainers[target] = task

    async def _drain(self, target: str) -> None:
        try:
            while (job := self._pending.pop(target, None)) is not None:
                async with self._slots:
                    started = time.monotonic()
                    try:
                        await job()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("check failed", extra={"target": target})
                    else:
                        log.info(
                            "check done",
                            extra={"target": target, "seconds": time.monotonic() - started},
                        )
        finally:
            self._drainers.pop(target, None)

    async def idle(self) -> None:
        """Wait until no job is pending or running (for tests and graceful shutdown)."""
        while self._drainers:
            await asyncio.gather(*list(self._drainers.values()), return_exceptions=True)

    async def aclose(self) -> None:
        self._closing = True
        tasks = list(self._drainers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
