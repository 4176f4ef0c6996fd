"""The durable journal: accepted deliveries, jobs, and the projects the bot has seen.

One interface, `Store`; SQLite (stdlib `sqlite3`, WAL) is the embedded default. Every
accepted delivery is committed here before the webhook answers 2xx, so a crash or restart
loses nothing: unfinished jobs are replayed on start.

Why SQLite calls run on the event loop, not in a thread: each statement here touches a
handful of rows through an index, and with WAL and `synchronous=NORMAL` a commit writes to
the WAL without an fsync, so a call takes tens of microseconds. That is cheaper than a
thread hop and keeps the one-loop, no-threads rule. `synchronous=NORMAL` in WAL mode is
durable against a process crash (kill -9); only an OS crash or power loss can drop the last
commits. https://www.sqlite.org/pragma.html#pragma_synchronous

Job states: queued -> running -> done | failed; queued or running -> superseded when a newer
head of the same target arrives. `failed` jobs are retried later by the sweep.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.redaction import redact_optional

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    key TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_received_at ON deliveries(received_at);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    payload TEXT NOT NULL,
    event_uuid TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_target ON jobs(target, state);
CREATE TABLE IF NOT EXISTS projects (
    project_id INTEGER PRIMARY KEY,
    last_event_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    target TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_updated_at ON snapshots(updated_at);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
);
"""

# What the last check of each target proved (its inputs and what it published) is kept for
# the target's next event. Bounded: the oldest beyond this many are dropped by `prune`.
MAX_SNAPSHOTS = 5000

QUEUED, RUNNING, DONE, FAILED, SUPERSEDED = "queued", "running", "done", "failed", "superseded"


@dataclass(frozen=True)
class JobRecord:
    id: int
    target: str
    kind: str
    head_sha: str
    payload: str
    attempts: int
    event_uuid: str | None = None


@dataclass(frozen=True)
class NewJob:
    target: str
    kind: str
    head_sha: str
    payload: str
    event_uuid: str | None = None  # the delivery's X-Gitlab-Event-UUID, sent back on calls


@dataclass(frozen=True)
class Accepted:
    duplicate: bool
    job_id: int | None = None
    superseded: tuple[int, ...] = ()  # queued jobs of the same target this one replaced


class Store(Protocol):
    """What the rest of the bot may ask of the journal, whatever engine holds it."""

    async def accept(
        self, key: str, job: NewJob | None, *, project_id: int | None, now: float
    ) -> Accepted: ...

    async def claim(self, *, busy_targets: frozenset[str], now: float) -> JobRecord | None: ...

    async def finish(self, job_id: int, state: str, *, error: str | None, now: float) -> None: ...

    async def release(self, job_id: int, *, now: float) -> None: ...

    async def supersede(self, job_id: int, *, now: float) -> None: ...

    async def replay_unfinished(self, *, now: float) -> int: ...

    async def retry_failed(self, *, older_than: float, max_attempts: int, now: float) -> int: ...

    async def enqueue(self, job: NewJob, *, seen_at: float, now: float) -> int | None: ...

    async def projects_seen(self) -> list[tuple[int, float]]: ...

    async def prune(self, *, keys_older_than: float, jobs_older_than: float) -> None: ...

    async def renew(self, job_ids: Sequence[int], *, now: float) -> None:
        """Extend the leases of this process's running jobs (they are alive)."""
        ...

    async def superseded_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        """Which of these running jobs a newer job of their target has superseded, wherever
        that job was accepted."""
        ...

    async def take_lease(self, name: str, *, seconds: float, now: float) -> bool:
        """Hold a named lease (e.g. catch-up) for `seconds`, if no other process holds it."""
        ...

    async def release_lease(self, name: str) -> None:
        """Give a held lease up (on shutdown), so another process need not wait it out."""
        ...

    async def load_snapshot(self, target: str) -> str | None: ...

    async def save_snapshot(self, target: str, data: str, *, now: float) -> None: ...

    async def drop_snapshot(self, target: str) -> None: ...

    async def counts(self) -> dict[str, int]: ...

    async def writable(self) -> bool: ...

    async def close(self) -> None: ...


class SqliteStore:
    """The embedded store. One connection, used only from the event loop's thread."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        # executescript commits on its own; every statement in the schema is idempotent.
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # Deliveries waiting for the next group commit (`accept`).
        self._to_accept: list[
            tuple[str, NewJob | None, int | None, float, asyncio.Future[Accepted]]
        ] = []

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def accept(
        self, key: str, job: NewJob | None, *, project_id: int | None, now: float
    ) -> Accepted:
        """Record a delivery and its job; a known key is a redelivery.

        Group commit: the deliveries that reach here in the same turn of the event loop
        share one commit, made in the next turn, and each caller returns once that commit
        is done (so a 2xx still follows the event to disk). Under load one commit carries
        many deliveries; alone, a delivery waits for nothing but its own."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Accepted] = loop.create_future()
        self._to_accept.append((key, job, project_id, now, answer))
        if len(self._to_accept) == 1:
            loop.call_soon(self._accept_together)
        return await answer

    def _accept_together(self) -> None:
        batch, self._to_accept = self._to_accept, []
        try:
            with self._transaction() as db:
                results = [
                    self._accept_one(db, key, job, project_id, now)
                    for key, job, project_id, now, _ in batch
                ]
        except Exception as exc:  # nothing of the batch is on disk: each delivery fails
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if not answer.done():
                answer.set_result(result)

    def _accept_one(
        self,
        db: sqlite3.Connection,
        key: str,
        job: NewJob | None,
        project_id: int | None,
        now: float,
    ) -> Accepted:
        inserted = db.execute(
            "INSERT OR IGNORE INTO deliveries(key, received_at) VALUES (?, ?)", (key, now)
        ).rowcount
        if not inserted:
            return Accepted(duplicate=True)
        if project_id is not None:
            db.execute(
                "INSERT INTO projects(project_id, last_event_at) VALUES (?, ?) "
                "ON CONFLICT(project_id) DO UPDATE SET last_event_at = excluded.last_event_at",
                (project_id, now),
            )
        if job is None:
            return Accepted(duplicate=False)
        superseded, job_id = self._enqueue(db, job, now)
        return Accepted(duplicate=False, job_id=job_id, superseded=superseded)

    def _enqueue(
        self, db: sqlite3.Connection, job: NewJob, now: float
    ) -> tuple[tuple[int, ...], int]:
        # Only the newest event of a target matters: it replaces whatever is still queued.
        rows = db.execute(
            "UPDATE jobs SET state = ?, updated_at = ? WHERE target = ? AND state = ? RETURNING id",
            (SUPERSEDED, now, job.target, QUEUED),
        ).fetchall()
        cursor = db.execute(
            "INSERT INTO jobs(target, kind, head_sha, payload, event_uuid, state, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job.target, job.kind, job.head_sha, job.payload, job.event_uuid, QUEUED, now, now),
        )
        return tuple(int(r["id"]) for r in rows), int(cursor.lastrowid or 0)

    async def enqueue(self, job: NewJob, *, seen_at: float, now: float) -> int | None:
        """Queue a job found by catch-up, unless the target already has one waiting or a job
        created since `seen_at`, when catch-up read the MR: that job knows a head at least
        as new, and catch-up's must not run after it with an older one."""
        with self._transaction() as db:
            waiting = db.execute(
                "SELECT 1 FROM jobs WHERE target = ? AND (state IN (?, ?) OR created_at >= ?) "
                "LIMIT 1",
                (job.target, QUEUED, RUNNING, seen_at),
            ).fetchone()
            if waiting:
                return None
            return self._enqueue(db, job, now)[1]

    async def claim(self, *, busy_targets: frozenset[str], now: float) -> JobRecord | None:
        """The oldest queued job whose target is not being checked, now marked running."""
        with self._transaction() as db:
            for row in db.execute(
                "SELECT id, target, kind, head_sha, payload, attempts, event_uuid FROM jobs "
                "WHERE state = ? ORDER BY id LIMIT 64",
                (QUEUED,),
            ).fetchall():
                if row["target"] in busy_targets:
                    continue
                db.execute(
                    "UPDATE jobs SET state = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE id = ?",
                    (RUNNING, now, row["id"]),
                )
                return JobRecord(
                    id=int(row["id"]),
                    target=str(row["target"]),
                    kind=str(row["kind"]),
                    head_sha=str(row["head_sha"]),
                    payload=str(row["payload"]),
                    attempts=int(row["attempts"]) + 1,
                    event_uuid=row["event_uuid"],
                )
        return None

    async def finish(self, job_id: int, state: str, *, error: str | None, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ? AND state = ?",
                # The error column is a sink: GitLab's error text may echo a token.
                (state, redact_optional(error), now, job_id, RUNNING),
            )

    async def release(self, job_id: int, *, now: float) -> None:
        """A running job interrupted by shutdown goes back to the queue, unless a newer job
        of its target is already waiting."""
        with self._transaction() as db:
            row = db.execute("SELECT target FROM jobs WHERE id = ?", (job_id,)).fetchone()
            newer = (
                row
                and db.execute(
                    "SELECT 1 FROM jobs WHERE target = ? AND state = ? AND id > ?",
                    (row["target"], QUEUED, job_id),
                ).fetchone()
            )
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                (SUPERSEDED if newer else QUEUED, now, job_id, RUNNING),
            )

    async def supersede(self, job_id: int, *, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state IN (?, ?)",
                (SUPERSEDED, now, job_id, QUEUED, RUNNING),
            )

    async def replay_unfinished(self, *, now: float) -> int:
        """After a crash, jobs left `running` are queued again (or superseded by a newer
        queued job of the same target). Returns how many jobs are queued now."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE state = ? AND EXISTS ("
                "SELECT 1 FROM jobs AS newer WHERE newer.target = jobs.target "
                "AND newer.state = ? AND newer.id > jobs.id)",
                (SUPERSEDED, now, RUNNING, QUEUED),
            )
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE state = ?",
                (QUEUED, now, RUNNING),
            )
            row = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (QUEUED,)).fetchone()
        return int(row[0])

    async def retry_failed(self, *, older_than: float, max_attempts: int, now: float) -> int:
        """Failed jobs (GitLab was unreachable) whose target has nothing newer run again."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE state = ? AND updated_at < ? "
                "AND attempts < ? AND NOT EXISTS (SELECT 1 FROM jobs AS other "
                "WHERE other.target = jobs.target AND other.id > jobs.id)",
                (QUEUED, now, FAILED, older_than, max_attempts),
            ).rowcount

    async def projects_seen(self) -> list[tuple[int, float]]:
        rows = self._db.execute("SELECT project_id, last_event_at FROM projects").fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    async def prune(self, *, keys_older_than: float, jobs_older_than: float) -> None:
        """Idempotency keys are kept for a bounded time; finished jobs likewise."""
        with self._transaction() as db:
            db.execute("DELETE FROM deliveries WHERE received_at < ?", (keys_older_than,))
            db.execute(
                "DELETE FROM jobs WHERE state IN (?, ?) AND updated_at < ?",
                (DONE, SUPERSEDED, jobs_older_than),
            )
            db.execute(
                "DELETE FROM snapshots WHERE target NOT IN "
                "(SELECT target FROM snapshots ORDER BY updated_at DESC LIMIT ?)",
                (MAX_SNAPSHOTS,),
            )

    async def renew(self, job_ids: Sequence[int], *, now: float) -> None:
        """One process owns the file: its running jobs are its own, no lease to renew."""

    async def superseded_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        found: set[int] = set()
        for job_id in job_ids:
            row = self._db.execute(
                "SELECT 1 FROM jobs AS mine WHERE mine.id = ? AND (mine.state = ? OR EXISTS ("
                "SELECT 1 FROM jobs AS newer WHERE newer.target = mine.target "
                "AND newer.state = ? AND newer.id > mine.id AND newer.head_sha <> mine.head_sha))",
                (job_id, SUPERSEDED, QUEUED),
            ).fetchone()
            if row:
                found.add(job_id)
        return frozenset(found)

    async def take_lease(self, name: str, *, seconds: float, now: float) -> bool:
        """One process per file: it always holds its leases."""
        return True

    async def release_lease(self, name: str) -> None:
        """Nothing to give up: no other process shares the file."""

    async def load_snapshot(self, target: str) -> str | None:
        row = self._db.execute("SELECT data FROM snapshots WHERE target = ?", (target,)).fetchone()
        return str(row[0]) if row else None

    async def save_snapshot(self, target: str, data: str, *, now: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO snapshots(target, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(target) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (target, data, now),
            )

    async def drop_snapshot(self, target: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM snapshots WHERE target = ?", (target,))

    async def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = {str(r[0]): int(r[1]) for r in rows}
        counts["deliveries"] = int(
            self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        )
        return counts

    async def writable(self) -> bool:
        try:
            with self._transaction():
                pass
        except sqlite3.Error:
            return False
        return True

    async def close(self) -> None:
        self._db.close()


def now() -> float:
    return time.time()


def is_postgres_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


@asynccontextmanager
async def open_store(
    location: str, *, lease_seconds: float = 30.0, pool_size: int = 8
) -> AsyncIterator[Store]:
    """The journal at `location`: a `postgresql://` URL (shared by replicas) or a SQLite
    file path (one process). Closed when the block ends."""
    store: Store
    if is_postgres_url(location):
        # Imported here: a user of the embedded default never loads the driver.
        from bot.store_postgres import PostgresStore

        store = await PostgresStore.open(location, lease_seconds=lease_seconds, pool_size=pool_size)
    else:
        store = SqliteStore(location)
    try:
        yield store
    finally:
        await store.close()
