"""The journal on PostgreSQL, shared by several replicas of the bot.

The same `Store` as the embedded SQLite one; what changes is that several processes use it
at once, so every guarantee is made by the database, not by a process's memory:

- A delivery's key is a primary key: `INSERT ... ON CONFLICT DO NOTHING` lets exactly one
  replica accept it, however many receive it at the same moment.
- Enqueueing for a target takes a transaction-scoped advisory lock on that target, so two
  replicas accepting events of one MR at once still leave one queued job, the newest.
- At most one job per target runs: a partial unique index on `jobs(target) WHERE state =
  'running'` makes a second claim of the same target fail, and claims take rows with
  `FOR UPDATE SKIP LOCKED`, so two replicas never claim the same job.
- A claimed job carries its replica and a lease. The replica renews the lease while the job
  runs; a replica that dies (kill -9) stops renewing, and once the lease expires any replica
  puts the job back in the queue. A replica whose lease was taken over cannot finish the job.
- Named leases (`take_lease`) let one replica at a time run housekeeping such as catch-up.
- Schema changes are numbered migrations, applied on start under a session advisory lock,
  so replicas starting together apply each one once.

psycopg 3's async connection pool, one per process, opened and closed by the app's lifespan
like the httpx client. https://www.psycopg.org/psycopg3/docs/advanced/pool.html
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections.abc import Sequence

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from bot import store as journal
from bot.redaction import redact_optional
from bot.store import (
    FAILED,
    QUEUED,
    RUNNING,
    SELECT_WAIVERS,
    SUPERSEDED,
    Accepted,
    ColumnTypes,
    JobRecord,
    NewJob,
    create_table,
    job_from_row,
    waiver_from_row,
)
from bot.waivers import MAX_WAIVERS_PER_MR, NewWaiver, Waiver

# Any constant works; it names "the bot's schema migrations" among advisory locks.
MIGRATION_LOCK = 0x636F6D706C  # "compl"

POSTGRES_TYPES = ColumnTypes(
    row_id="BIGSERIAL PRIMARY KEY",
    seconds="DOUBLE PRECISION",
    gitlab_id="BIGINT",
    flag="BOOLEAN NOT NULL DEFAULT FALSE",
)

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        create_table("deliveries", POSTGRES_TYPES)
        # A running job's replica and lease (see the module's doc).
        + create_table(
            "jobs", POSTGRES_TYPES, more_columns=("owner TEXT", "lease_until DOUBLE PRECISION")
        )
        + """
        CREATE UNIQUE INDEX jobs_one_running_per_target ON jobs(target)
            WHERE state = 'running';
        """
        + create_table("projects", POSTGRES_TYPES)
        + create_table("snapshots", POSTGRES_TYPES)
        + create_table("leases", POSTGRES_TYPES),
    ),
    (
        2,
        # Accepting a delivery in one round trip: the webhook answers only after this
        # commits, and five statements from the client cost five round trips on the
        # answer's path. The same steps as before, in the same order, run in the server.
        """
        CREATE FUNCTION compliance_accept(
            p_key TEXT, p_now DOUBLE PRECISION, p_project_id BIGINT, p_target TEXT,
            p_kind TEXT, p_head_sha TEXT, p_payload TEXT, p_event_uuid TEXT,
            OUT duplicate BOOLEAN, OUT job_id BIGINT, OUT superseded BIGINT[]
        ) LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO deliveries(key, received_at) VALUES (p_key, p_now)
                ON CONFLICT (key) DO NOTHING;
            IF NOT FOUND THEN
                duplicate := TRUE;
                RETURN;
            END IF;
            duplicate := FALSE;
            IF p_project_id IS NOT NULL THEN
                INSERT INTO projects(project_id, last_event_at) VALUES (p_project_id, p_now)
                    ON CONFLICT (project_id) DO UPDATE SET last_event_at =
                        GREATEST(projects.last_event_at, excluded.last_event_at);
            END IF;
            IF p_target IS NULL THEN
                RETURN;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended(p_target, 0));
            WITH replaced AS (
                UPDATE jobs SET state = 'superseded', updated_at = p_now
                WHERE target = p_target AND state = 'queued' RETURNING id
            ) SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO superseded FROM replaced;
            INSERT INTO jobs(target, kind, head_sha, payload, event_uuid, state, created_at,
                             updated_at)
                VALUES (p_target, p_kind, p_head_sha, p_payload, p_event_uuid, 'queued',
                        p_now, p_now)
                RETURNING id INTO job_id;
        END
        $$;
        """,
    ),
    (
        3,
        # Projects GitLab answered 404/403 for at catch-up, as of their last event (a newer
        # delivery brings them back); and the one row `writable` rewrites to prove a write.
        create_table("unreachable_projects", POSTGRES_TYPES)
        + create_table("journal_probe", POSTGRES_TYPES),
    ),
    (
        4,
        # Waivers (`/compliance waive`): who, when, why, the rule, the fingerprints of the
        # findings waived, the head they were given on, and until when. `expiry_handled`
        # marks a waiver whose expiry has queued its MR's re-check.
        create_table("waivers", POSTGRES_TYPES)
        + """
        CREATE INDEX waivers_expiry ON waivers(expires_at) WHERE NOT expiry_handled;
        """,
    ),
)

# How long a caller waits for a working connection before the store call fails.
WAIT_FOR_CONNECTION_SECONDS = 5.0
# How often (at most) a replica looks for jobs whose lease expired: a dead replica's.
REQUEUE_EVERY_SECONDS = 1.0

_Pool = AsyncConnectionPool[psycopg.AsyncConnection[DictRow]]


@functools.cache
def _pg(statement: str) -> str:
    """A statement both engines share (`bot.store`), in psycopg's parameters: `%s` for
    SQLite's `?`, and a `%` of its own doubled."""
    return statement.replace("%", "%%").replace("?", "%s")


def replica_name() -> str:
    """This process among the replicas: host, pid, and a nonce for pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PostgresStore:
    """The journal in PostgreSQL; create with `await PostgresStore.open(url)`."""

    def __init__(self, pool: _Pool, *, lease_seconds: float) -> None:
        self._pool = pool
        self.replica = replica_name()
        self.lease_seconds = lease_seconds
        self._requeued_at = float("-inf")
        # A dead replica's jobs wait at most their lease and a fraction of it more.
        self._requeue_every = min(REQUEUE_EVERY_SECONDS, lease_seconds / 4)

    @classmethod
    async def open(
        cls, url: str, *, lease_seconds: float = 30.0, pool_size: int = 8
    ) -> PostgresStore:
        pool: _Pool = AsyncConnectionPool(
            url,
            connection_class=psycopg.AsyncConnection[DictRow],
            min_size=1,
            max_size=pool_size,
            # A connection is checked as it leaves the pool: after PostgreSQL restarts,
            # every idle one is dead, and a webhook must not fail on a stale connection.
            # https://www.psycopg.org/psycopg3/docs/advanced/pool.html#connection-quality
            check=AsyncConnectionPool.check_connection,
            # With the database down, a webhook gets its 5xx within GitLab's webhook timeout
            # (10 s by default) rather than hanging; a worker retries after a pause.
            timeout=WAIT_FOR_CONNECTION_SECONDS,
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": int(WAIT_FOR_CONNECTION_SECONDS),
            },
        )
        await pool.open(wait=True, timeout=30)
        store = cls(pool, lease_seconds=lease_seconds)
        try:
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def migrate(self) -> None:
        async with self._pool.connection() as db:
            # A session lock: held across the migrations' own transactions.
            await db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                await db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                cursor = await db.execute("SELECT version FROM schema_migrations")
                applied = {int(row["version"]) for row in await cursor.fetchall()}
                for version, sql in MIGRATIONS:
                    if version in applied:
                        continue
                    async with db.transaction():
                        await db.execute(sql.encode())  # trusted: the literals above
                        await db.execute(
                            "INSERT INTO schema_migrations(version) VALUES (%s)", (version,)
                        )
            finally:
                await db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    async def schema_version(self) -> int:
        async with self._pool.connection() as db:
            cursor = await db.execute("SELECT max(version) AS v FROM schema_migrations")
            row = await cursor.fetchone()
        return int(row["v"]) if row and row["v"] is not None else 0

    # -- the journal -------------------------------------------------------------------------

    async def accept(
        self, key: str, job: NewJob | None, *, project_id: int | None, now: float
    ) -> Accepted:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "SELECT duplicate, job_id, superseded FROM "
                "compliance_accept(%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    key,
                    now,
                    project_id,
                    job.target if job else None,
                    job.kind if job else None,
                    job.head_sha if job else None,
                    job.payload if job else None,
                    job.event_uuid if job else None,
                ),
            )
            row = await cursor.fetchone()
        assert row is not None
        if row["duplicate"]:
            return Accepted(duplicate=True)
        job_id = row["job_id"]
        return Accepted(
            duplicate=False,
            job_id=int(job_id) if job_id is not None else None,
            superseded=tuple(int(i) for i in row["superseded"] or ()),
        )

    async def _enqueue(
        self, db: psycopg.AsyncConnection[DictRow], job: NewJob, now: float
    ) -> tuple[tuple[int, ...], int]:
        # Serialise enqueues of one target across replicas, so only the newest stays queued.
        await db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (job.target,))
        cursor = await db.execute(
            _pg(journal.SUPERSEDE_QUEUED), (SUPERSEDED, now, job.target, QUEUED)
        )
        superseded = tuple(int(row["id"]) for row in await cursor.fetchall())
        cursor = await db.execute(_pg(journal.INSERT_JOB), journal.job_values(job, now))
        row = await cursor.fetchone()
        assert row is not None
        return superseded, int(row["id"])

    async def enqueue(self, job: NewJob, *, seen_at: float, now: float) -> int | None:
        async with self._pool.connection() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (job.target,))
            cursor = await db.execute(
                _pg(journal.JOB_WAITING), (job.target, QUEUED, RUNNING, seen_at)
            )
            if await cursor.fetchone() is not None:
                return None
            return (await self._enqueue(db, job, now))[1]

    async def _requeue_expired(self, db: psycopg.AsyncConnection[DictRow], now: float) -> None:
        """Jobs of replicas that stopped renewing their lease (dead ones) go back to the
        queue, or are superseded when a newer job of their target is waiting."""
        await db.execute(
            "UPDATE jobs SET state = CASE WHEN EXISTS (SELECT 1 FROM jobs AS newer "
            "WHERE newer.target = jobs.target AND newer.state = %s AND newer.id > jobs.id) "
            "THEN %s ELSE %s END, owner = NULL, lease_until = NULL, updated_at = %s "
            "WHERE state = %s AND lease_until < %s",
            (QUEUED, SUPERSEDED, QUEUED, now, RUNNING, now),
        )

    async def claim(self, *, busy_targets: frozenset[str], now: float) -> JobRecord | None:
        try:
            async with self._pool.connection() as db:
                # Expired leases are looked for about once a second, not on every claim:
                # one statement, one round trip, is the common case.
                if abs(now - self._requeued_at) >= self._requeue_every:
                    self._requeued_at = now
                    await self._requeue_expired(db, now)
                cursor = await db.execute(
                    "UPDATE jobs SET state = %s, attempts = attempts + 1, owner = %s, "  # noqa: S608 -- literals only
                    "lease_until = %s, updated_at = %s WHERE id = ("
                    "  SELECT id FROM jobs AS queued WHERE state = %s"
                    "  AND NOT (target = ANY(%s))"
                    "  AND NOT EXISTS (SELECT 1 FROM jobs AS running"
                    "    WHERE running.target = queued.target AND running.state = %s)"
                    "  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                    ") RETURNING " + journal.CLAIMED_JOB_COLUMNS,
                    (
                        RUNNING,
                        self.replica,
                        now + self.lease_seconds,
                        now,
                        QUEUED,
                        list(busy_targets),
                        RUNNING,
                    ),
                )
                row = await cursor.fetchone()
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            # Another replica claimed a job of the same target at this very moment: the
            # unique index kept it to one. Try again on the next round.
            return None
        return job_from_row(row) if row else None

    async def renew(self, job_ids: Sequence[int], *, now: float) -> None:
        if not job_ids:
            return
        async with self._pool.connection() as db:
            await db.execute(
                "UPDATE jobs SET lease_until = %s WHERE id = ANY(%s) AND owner = %s AND state = %s",
                (now + self.lease_seconds, list(job_ids), self.replica, RUNNING),
            )

    async def superseded_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        if not job_ids:
            return frozenset()
        async with self._pool.connection() as db:
            # Also a job that is no longer this replica's: its lease ran out while this
            # replica stalled, and another took it over. It must not publish any more.
            cursor = await db.execute(
                "SELECT mine.id FROM jobs AS mine WHERE mine.id = ANY(%s) AND ("
                "mine.state <> %s OR mine.owner IS DISTINCT FROM %s OR EXISTS ("
                "SELECT 1 FROM jobs AS newer WHERE newer.target = mine.target "
                "AND newer.state = %s AND newer.id > mine.id "
                "AND newer.head_sha <> mine.head_sha))",
                (list(job_ids), RUNNING, self.replica, QUEUED),
            )
            return frozenset(int(row["id"]) for row in await cursor.fetchall())

    async def lost_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        if not job_ids:
            return frozenset()
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "SELECT id FROM jobs WHERE id = ANY(%s) AND NOT (state = %s AND owner = %s)",
                (list(job_ids), RUNNING, self.replica),
            )
            return frozenset(int(row["id"]) for row in await cursor.fetchall())

    async def finish(self, job_id: int, state: str, *, error: str | None, now: float) -> None:
        async with self._pool.connection() as db:
            await db.execute(
                "UPDATE jobs SET state = %s, error = %s, updated_at = %s, owner = NULL, "
                "lease_until = NULL WHERE id = %s AND state = %s AND owner = %s",
                # The error column is a sink: GitLab's error text may echo a token.
                (state, redact_optional(error), now, job_id, RUNNING, self.replica),
            )

    async def release(self, job_id: int, *, now: float) -> None:
        async with self._pool.connection() as db, db.transaction():
            await db.execute(
                "UPDATE jobs SET state = CASE WHEN EXISTS (SELECT 1 FROM jobs AS newer "
                "WHERE newer.target = jobs.target AND newer.state = %s AND newer.id > jobs.id) "
                "THEN %s ELSE %s END, owner = NULL, lease_until = NULL, updated_at = %s "
                "WHERE id = %s AND state = %s AND owner = %s",
                (QUEUED, SUPERSEDED, QUEUED, now, job_id, RUNNING, self.replica),
            )

    async def replay_unfinished(self, *, now: float) -> int:
        """Other replicas may be running jobs right now: only those whose lease expired are
        taken back. Returns how many jobs are queued."""
        async with self._pool.connection() as db, db.transaction():
            await self._requeue_expired(db, now)
            cursor = await db.execute(_pg(journal.COUNT_QUEUED), (QUEUED,))
            row = await cursor.fetchone()
        return int(row["n"]) if row else 0

    async def retry_failed(self, *, older_than: float, max_attempts: int, now: float) -> int:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                _pg(journal.RETRY_FAILED), (QUEUED, now, FAILED, older_than, max_attempts)
            )
            return cursor.rowcount

    async def projects_seen(self) -> list[tuple[int, float]]:
        async with self._pool.connection() as db:
            cursor = await db.execute(_pg(journal.PROJECTS_SEEN))
            rows = await cursor.fetchall()
        return [(int(r["project_id"]), float(r["last_event_at"])) for r in rows]

    async def mark_unreachable(self, project_id: int, *, as_of: float, now: float) -> None:
        async with self._pool.connection() as db:
            await db.execute(_pg(journal.MARK_UNREACHABLE), (project_id, as_of, now))

    async def prune(self, *, keys_older_than: float, jobs_older_than: float) -> None:
        async with self._pool.connection() as db, db.transaction():
            for statement, values in journal.prune_statements(
                keys_older_than=keys_older_than, jobs_older_than=jobs_older_than
            ):
                await db.execute(_pg(statement), values)

    async def counts(self) -> dict[str, int]:
        async with self._pool.connection() as db:
            cursor = await db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            counts = {str(r["state"]): int(r["n"]) for r in await cursor.fetchall()}
            cursor = await db.execute("SELECT COUNT(*) AS n FROM deliveries")
            row = await cursor.fetchone()
            cursor = await db.execute("SELECT COUNT(*) AS n FROM projects")
            projects = await cursor.fetchone()
        counts["deliveries"] = int(row["n"]) if row else 0
        counts["projects"] = int(projects["n"]) if projects else 0
        return counts

    async def writable(self) -> bool:
        try:
            async with self._pool.connection(timeout=5) as db:
                # A committed write (one row, rewritten), not only a lock: it fails when the
                # database cannot write, e.g. its disk is full.
                await db.execute(_pg(journal.WRITE_PROBE), (1, time.time()))
        except (psycopg.Error, TimeoutError):
            return False
        return True

    async def take_lease(self, name: str, *, seconds: float, now: float) -> bool:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "INSERT INTO leases(name, holder, until) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
                "WHERE leases.holder = excluded.holder OR leases.until < %s RETURNING holder",
                (name, self.replica, now + seconds, now),
            )
            return await cursor.fetchone() is not None

    async def release_lease(self, name: str) -> None:
        async with self._pool.connection() as db:
            await db.execute(
                "DELETE FROM leases WHERE name = %s AND holder = %s", (name, self.replica)
            )

    async def load_snapshot(self, target: str) -> str | None:
        async with self._pool.connection() as db:
            cursor = await db.execute(_pg(journal.LOAD_SNAPSHOT), (target,))
            row = await cursor.fetchone()
        return str(row["data"]) if row else None

    async def save_snapshot(self, target: str, data: str, *, now: float) -> None:
        async with self._pool.connection() as db:
            await db.execute(_pg(journal.SAVE_SNAPSHOT), (target, data, now))

    # -- waivers ---------------------------------------------------------------------------

    async def add_waiver(self, waiver: NewWaiver) -> int:
        async with self._pool.connection() as db:
            cursor = await db.execute(_pg(journal.INSERT_WAIVER), journal._waiver_values(waiver))
            row = await cursor.fetchone()
        assert row is not None
        return int(row["id"])

    async def withdraw_waivers(
        self, project_id: int, mr_iid: int, rule: str, *, by: str, now: float
    ) -> int:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                _pg(journal.WITHDRAW_WAIVERS), (now, by, project_id, mr_iid, rule, now)
            )
            return cursor.rowcount

    async def waivers_of(self, project_id: int, mr_iid: int) -> list[Waiver]:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                _pg(journal.WAIVERS_OF), (project_id, mr_iid, MAX_WAIVERS_PER_MR)
            )
            rows = await cursor.fetchall()
        return [waiver_from_row(r) for r in reversed(rows)]

    async def list_waivers(self, project_ids: Sequence[int], *, limit: int) -> list[Waiver]:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                SELECT_WAIVERS + "WHERE project_id = ANY(%s) ORDER BY id DESC LIMIT %s",
                (list(project_ids), limit),
            )
            rows = await cursor.fetchall()
        return [waiver_from_row(r) for r in rows]

    async def expired_waivers(self, *, now: float, limit: int) -> list[tuple[int, int]]:
        async with self._pool.connection() as db:
            cursor = await db.execute(_pg(journal.EXPIRED_WAIVERS), (now, limit))
            rows = await cursor.fetchall()
        return [(int(r["project_id"]), int(r["mr_iid"])) for r in rows]

    async def mark_expiry_handled(self, project_id: int, mr_iid: int, *, now: float) -> None:
        # Replicas sweeping at once may both queue the MR's re-check; `enqueue` keeps one.
        async with self._pool.connection() as db:
            await db.execute(_pg(journal.MARK_EXPIRY_HANDLED), (project_id, mr_iid, now))

    async def prune_waivers(self, *, ended_before: float) -> None:
        async with self._pool.connection() as db:
            await db.execute(_pg(journal.PRUNE_WAIVERS), (ended_before, ended_before))

    async def close(self) -> None:
        await self._pool.close()
