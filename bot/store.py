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

Another process holding the file's lock (a backup, an `sqlite3` shell) must not freeze that
loop: SQLite's own busy wait sleeps in the calling thread, so it is kept to a few
milliseconds per try, and the store waits between tries on the loop, up to a bounded total
(`SQLITE_BUSY_TIMEOUT_MS`). Past it the call fails and a delivery is answered 503.
https://www.sqlite.org/c3ref/busy_timeout.html

Job states: queued -> running -> done | failed; queued or running -> superseded when a newer
head of the same target arrives. `failed` jobs are retried later by the sweep.

Bounded: finished and failed jobs, and projects GitLab no longer shows the bot, are pruned
after the journal's retention; a queued or running job never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import sqlite3
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.redaction import redact_optional
from bot.waivers import MAX_WAIVERS_PER_MR, NewWaiver, Waiver

SCHEMA_VERSION = 4


@dataclass(frozen=True)
class ColumnTypes:
    """How an engine spells the types of the journal's columns (`TABLES`)."""

    row_id: str  # a key the database assigns, in order
    seconds: str  # a UNIX time
    gitlab_id: str  # a project's id, an MR's iid
    flag: str  # a flag, unset when the row is written


# The tables of both engines, column for column, in `ColumnTypes` of either; each table's
# indexes follow it. This is the schema as first created: a change to it is a migration of
# both engines (PostgreSQL's numbered `MIGRATIONS`, SQLite's `SCHEMA_VERSION`), not an edit.
TABLES: dict[str, tuple[str, ...]] = {
    "deliveries": ("key TEXT PRIMARY KEY", "received_at {seconds} NOT NULL"),
    "jobs": (
        "id {row_id}",
        "target TEXT NOT NULL",
        "kind TEXT NOT NULL",
        "head_sha TEXT NOT NULL",
        "payload TEXT NOT NULL",
        "event_uuid TEXT",
        "state TEXT NOT NULL",
        "attempts INTEGER NOT NULL DEFAULT 0",
        "created_at {seconds} NOT NULL",
        "updated_at {seconds} NOT NULL",
        "error TEXT",
    ),
    "projects": ("project_id {gitlab_id} PRIMARY KEY", "last_event_at {seconds} NOT NULL"),
    "snapshots": ("target TEXT PRIMARY KEY", "data TEXT NOT NULL", "updated_at {seconds} NOT NULL"),
    "leases": ("name TEXT PRIMARY KEY", "holder TEXT NOT NULL", "until {seconds} NOT NULL"),
    "unreachable_projects": (
        "project_id {gitlab_id} PRIMARY KEY",
        "as_of {seconds} NOT NULL",
        "marked_at {seconds} NOT NULL",
    ),
    "journal_probe": ("id INTEGER PRIMARY KEY CHECK (id = 1)", "written_at {seconds} NOT NULL"),
    "waivers": (
        "id {row_id}",
        "project_id {gitlab_id} NOT NULL",
        "mr_iid {gitlab_id} NOT NULL",
        "rule TEXT NOT NULL",
        "location TEXT NOT NULL",
        "fingerprints TEXT NOT NULL",
        "reason TEXT NOT NULL",
        "author TEXT NOT NULL",
        "created_at {seconds} NOT NULL",
        "expires_at {seconds} NOT NULL",
        "head_sha TEXT NOT NULL",
        "withdrawn_at {seconds}",
        "withdrawn_by TEXT",
        "expiry_handled {flag}",
    ),
}
INDEXES: dict[str, tuple[str, ...]] = {
    "deliveries": ("deliveries_received_at ON deliveries(received_at)",),
    "jobs": ("jobs_state ON jobs(state, id)", "jobs_target ON jobs(target, state)"),
    "snapshots": ("snapshots_updated_at ON snapshots(updated_at)",),
    "waivers": ("waivers_mr ON waivers(project_id, mr_iid)",),
}


def create_table(name: str, types: ColumnTypes, *, more_columns: Sequence[str] = ()) -> str:
    """The statements creating table `name` (`TABLES`) and its indexes, in an engine's types;
    `more_columns` are the engine's own."""
    columns = [column.format_map(vars(types)) for column in TABLES[name]]
    lines = ",\n    ".join([*columns, *more_columns])
    indexes = "".join(f"CREATE INDEX IF NOT EXISTS {index};\n" for index in INDEXES.get(name, ()))
    return f"CREATE TABLE IF NOT EXISTS {name} (\n    {lines}\n);\n{indexes}"


SQLITE_TYPES = ColumnTypes(
    row_id="INTEGER PRIMARY KEY AUTOINCREMENT",
    seconds="REAL",
    # INTEGER PRIMARY KEY, not BIGINT: it is SQLite's rowid (64 bits either way).
    gitlab_id="INTEGER",
    flag="INTEGER NOT NULL DEFAULT 0",
)

_SCHEMA = "".join(create_table(name, SQLITE_TYPES) for name in TABLES) + (
    "CREATE INDEX IF NOT EXISTS waivers_expiry ON waivers(expiry_handled, expires_at);\n"
)

# What the last check of each target proved (its inputs and what it published) is kept for
# the target's next event. Bounded: the oldest beyond this many are dropped by `prune`.
MAX_SNAPSHOTS = 5000

# With SQLite, the longest the event loop sleeps inside one try for another process's lock.
SQLITE_BUSY_SLICE_MS = 5
# Calls on a request's path (a delivery, /readyz, /metrics) give up after the busy timeout.
# Background calls (workers, sweeper) wait at least this long: they hold up nothing but
# themselves, and a worker's `finish` that gave up would leave its job `running`.
# They also try less often, so that many waiting workers keep the loop nearly free.
ANSWERING_CALLS = frozenset({"accept", "writable", "_probe", "counts"})
BACKGROUND_BUSY_SECONDS = 30.0

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
    # Journaled after a job of the same target with another head, which it replaced: deliveries
    # and replicas commit in any order, so this job's head may be the older one, and its check
    # confirms the MR's head before it publishes.
    contested: bool = False


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

    async def replay_unfinished(self, *, now: float) -> int: ...

    async def retry_failed(self, *, older_than: float, max_attempts: int, now: float) -> int: ...

    async def enqueue(self, job: NewJob, *, seen_at: float, now: float) -> int | None: ...

    async def projects_seen(self) -> list[tuple[int, float]]:
        """Projects catch-up covers, with their last event: those seen, except those marked
        unreachable since their last delivery."""
        ...

    async def mark_unreachable(self, project_id: int, *, as_of: float, now: float) -> None:
        """GitLab answered 404/403 for the project when catch-up read it after the event at
        `as_of`: catch-up skips it until a newer delivery for it arrives."""
        ...

    async def prune(self, *, keys_older_than: float, jobs_older_than: float) -> None:
        """Forget delivery keys older than `keys_older_than`; finished and failed jobs, and
        unreachable projects, marked before `jobs_older_than` (the journal's retention)."""
        ...

    async def renew(self, job_ids: Sequence[int], *, now: float) -> None:
        """Extend the leases of this process's running jobs (they are alive)."""
        ...

    async def superseded_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        """Which of these running jobs a newer job of their target has superseded, wherever
        that job was accepted."""
        ...

    async def lost_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        """Which of these jobs this process no longer runs: another took them over."""
        ...

    async def take_lease(self, name: str, *, seconds: float, now: float) -> bool:
        """Hold a named lease (e.g. catch-up) for `seconds`, if no other process holds it."""
        ...

    async def release_lease(self, name: str) -> None:
        """Give a held lease up (on shutdown), so another process need not wait it out."""
        ...

    async def load_snapshot(self, target: str) -> str | None: ...

    async def save_snapshot(self, target: str, data: str, *, now: float) -> None: ...

    async def counts(self) -> dict[str, int]: ...

    # -- waivers: the trail of `/compliance waive`, kept until `prune_waivers` ---------------

    async def add_waiver(self, waiver: NewWaiver) -> int: ...

    async def withdraw_waivers(
        self, project_id: int, mr_iid: int, rule: str, *, by: str, now: float
    ) -> int:
        """Withdraw the MR's active waivers of `rule`; how many there were."""
        ...

    async def waivers_of(self, project_id: int, mr_iid: int) -> list[Waiver]:
        """The MR's waivers not withdrawn (active or expired), oldest first, bounded."""
        ...

    async def list_waivers(self, project_ids: Sequence[int], *, limit: int) -> list[Waiver]:
        """Every waiver of these projects, withdrawn and expired included, newest first."""
        ...

    async def expired_waivers(self, *, now: float, limit: int) -> list[tuple[int, int]]:
        """MRs (project id, iid) with a waiver that expired by `now` and whose re-check is
        not queued yet (`mark_expiry_handled`)."""
        ...

    async def mark_expiry_handled(self, project_id: int, mr_iid: int, *, now: float) -> None:
        """The MR's re-check after its waivers expired by `now` is queued."""
        ...

    async def prune_waivers(self, *, ended_before: float) -> None:
        """Forget waivers that expired or were withdrawn before `ended_before`."""
        ...

    async def writable(self) -> bool:
        """Whether the journal takes a write now: a real one, so a full disk shows too."""
        ...

    async def close(self) -> None: ...


_Method = TypeVar("_Method", bound=Callable[..., Coroutine[Any, Any, Any]])
_Class = TypeVar("_Class", bound=type)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    # Extended codes carry the primary code in their low byte (SQLITE_BUSY_SNAPSHOT, ...).
    # https://www.sqlite.org/rescode.html
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _waiting_out_locks(method: _Method) -> _Method:
    """Run a store call again while another process holds the lock, sleeping on the loop
    between tries, until the store's busy budget is spent. Every call is one transaction
    (rolled back when it fails) or one read, so running it again is safe."""

    background = method.__name__ not in ANSWERING_CALLS
    longest_pause = 1.0 if background else 0.05

    @functools.wraps(method)
    async def wrapper(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        budget = self.busy_timeout
        if background:
            budget = max(budget, BACKGROUND_BUSY_SECONDS)
        deadline = time.monotonic() + budget
        pause = 0.002
        while True:
            try:
                return await method(self, *args, **kwargs)
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if not _is_busy(exc) or left <= 0:
                    raise
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, longest_pause)

    return wrapper  # type: ignore[return-value]


def _every_call_waits_out_locks(cls: _Class) -> _Class:
    for name, member in list(vars(cls).items()):
        if inspect.iscoroutinefunction(member):
            setattr(cls, name, _waiting_out_locks(member))
    return cls


@_every_call_waits_out_locks
class SqliteStore:
    """The embedded store. One connection, used only from the event loop's thread."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: float = 250) -> None:
        # The total time a call waits for another process's lock (see the module's doc).
        self.busy_timeout = busy_timeout_ms / 1000
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True)
        self._db.row_factory = sqlite3.Row
        # Opening runs before the server answers anything: it may wait the whole budget.
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # executescript commits on its own; every statement in the schema is idempotent.
        self._db.executescript(_SCHEMA)
        if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db.execute(f"PRAGMA busy_timeout={min(SQLITE_BUSY_SLICE_MS, int(busy_timeout_ms))}")
        # Deliveries waiting for the next group commit (`accept`).
        self._to_accept: list[
            tuple[str, NewJob | None, int | None, float, asyncio.Future[Accepted]]
        ] = []

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (an I/O error during the write).
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

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
                "ON CONFLICT(project_id) DO UPDATE SET "
                "last_event_at = MAX(projects.last_event_at, excluded.last_event_at)",
                (project_id, now),
            )
        if job is None:
            return Accepted(duplicate=False)
        superseded, job_id = self._enqueue(db, job, now)
        return Accepted(duplicate=False, job_id=job_id, superseded=superseded)

    def _enqueue(
        self, db: sqlite3.Connection, job: NewJob, now: float
    ) -> tuple[tuple[int, ...], int]:
        rows = db.execute(SUPERSEDE_QUEUED, (SUPERSEDED, now, job.target, QUEUED)).fetchall()
        inserted = db.execute(INSERT_JOB, job_values(job, now)).fetchall()
        return tuple(int(r["id"]) for r in rows), int(inserted[0]["id"])

    async def enqueue(self, job: NewJob, *, seen_at: float, now: float) -> int | None:
        """Queue a job found by catch-up, unless the target already has one waiting or a job
        created since `seen_at`, when catch-up read the MR: that job knows a head at least
        as new, and catch-up's must not run after it with an older one."""
        with self._transaction() as db:
            waiting = db.execute(JOB_WAITING, (job.target, QUEUED, RUNNING, seen_at)).fetchone()
            if waiting:
                return None
            return self._enqueue(db, job, now)[1]

    async def claim(self, *, busy_targets: frozenset[str], now: float) -> JobRecord | None:
        """The oldest queued job whose target is not being checked, now marked running."""
        with self._transaction() as db:
            for row in db.execute(
                f"SELECT {CLAIMED_JOB_COLUMNS} FROM jobs "  # noqa: S608 -- literals only
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
                return replace(job_from_row(dict(row)), attempts=int(row["attempts"]) + 1)
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
            row = db.execute(COUNT_QUEUED, (QUEUED,)).fetchone()
        return int(row["n"])

    async def retry_failed(self, *, older_than: float, max_attempts: int, now: float) -> int:
        """Failed jobs (GitLab was unreachable) whose target has nothing newer run again."""
        with self._transaction() as db:
            return db.execute(
                RETRY_FAILED, (QUEUED, now, FAILED, older_than, max_attempts)
            ).rowcount

    async def projects_seen(self) -> list[tuple[int, float]]:
        rows = self._db.execute(PROJECTS_SEEN).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    async def mark_unreachable(self, project_id: int, *, as_of: float, now: float) -> None:
        with self._transaction() as db:
            db.execute(MARK_UNREACHABLE, (project_id, as_of, now))

    async def prune(self, *, keys_older_than: float, jobs_older_than: float) -> None:
        """Idempotency keys are kept for a bounded time; finished and failed jobs, and
        projects GitLab does not show the bot, for the journal's retention."""
        with self._transaction() as db:
            for statement, values in prune_statements(
                keys_older_than=keys_older_than, jobs_older_than=jobs_older_than
            ):
                db.execute(statement, values)

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

    async def lost_among(self, job_ids: Sequence[int]) -> frozenset[int]:
        """One process per file: no other process can take its jobs over."""
        return frozenset()

    async def take_lease(self, name: str, *, seconds: float, now: float) -> bool:
        """One process per file: it always holds its leases."""
        return True

    async def release_lease(self, name: str) -> None:
        """Nothing to give up: no other process shares the file."""

    async def load_snapshot(self, target: str) -> str | None:
        row = self._db.execute(LOAD_SNAPSHOT, (target,)).fetchone()
        return str(row[0]) if row else None

    async def save_snapshot(self, target: str, data: str, *, now: float) -> None:
        with self._transaction() as db:
            db.execute(SAVE_SNAPSHOT, (target, data, now))

    async def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = {str(r[0]): int(r[1]) for r in rows}
        counts["deliveries"] = int(
            self._db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        )
        counts["projects"] = int(self._db.execute("SELECT COUNT(*) FROM projects").fetchone()[0])
        return counts

    async def add_waiver(self, waiver: NewWaiver) -> int:
        with self._transaction() as db:
            inserted = db.execute(INSERT_WAIVER, _waiver_values(waiver)).fetchall()
            return int(inserted[0]["id"])

    async def withdraw_waivers(
        self, project_id: int, mr_iid: int, rule: str, *, by: str, now: float
    ) -> int:
        with self._transaction() as db:
            return db.execute(WITHDRAW_WAIVERS, (now, by, project_id, mr_iid, rule, now)).rowcount

    async def waivers_of(self, project_id: int, mr_iid: int) -> list[Waiver]:
        rows = self._db.execute(WAIVERS_OF, (project_id, mr_iid, MAX_WAIVERS_PER_MR)).fetchall()
        return [waiver_from_row(dict(r)) for r in reversed(rows)]

    async def list_waivers(self, project_ids: Sequence[int], *, limit: int) -> list[Waiver]:
        # The ids as one JSON parameter: any number of them, no SQL built from values.
        rows = self._db.execute(
            SELECT_WAIVERS  # noqa: S608 -- literals only; the ids are a parameter
            + "WHERE project_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY id DESC LIMIT ?",
            (json.dumps([int(i) for i in project_ids]), limit),
        ).fetchall()
        return [waiver_from_row(dict(r)) for r in rows]

    async def expired_waivers(self, *, now: float, limit: int) -> list[tuple[int, int]]:
        rows = self._db.execute(EXPIRED_WAIVERS, (now, limit)).fetchall()
        return [(int(r[0]), int(r[1])) for r in rows]

    async def mark_expiry_handled(self, project_id: int, mr_iid: int, *, now: float) -> None:
        with self._transaction() as db:
            db.execute(MARK_EXPIRY_HANDLED, (project_id, mr_iid, now))

    async def prune_waivers(self, *, ended_before: float) -> None:
        with self._transaction() as db:
            db.execute(PRUNE_WAIVERS, (ended_before, ended_before))

    async def writable(self) -> bool:
        try:
            await self._probe()
        except sqlite3.Error:
            return False
        return True

    async def _probe(self) -> None:
        # An empty transaction takes the lock but writes nothing: a full disk would pass.
        with self._transaction() as db:
            db.execute(WRITE_PROBE, (1, time.time()))

    async def close(self) -> None:
        self._db.close()


# -- the SQL both engines run, written once in SQLite's `?` parameters ---------------------
# PostgreSQL's store turns the `?` into psycopg's `%s` (no statement here has a `?` or a `%`
# of its own); what only one engine can say stays in that engine's store.


def _upsert(table: str, key: str, columns: Sequence[str]) -> str:
    """An INSERT of a row that, when a row of that `key` is there already, overwrites its
    `columns` instead."""
    names = ", ".join((key, *columns))
    values = ", ".join("?" for _ in (key, *columns))
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns)
    return (
        f"INSERT INTO {table}({names}) VALUES ({values}) "  # noqa: S608 -- names of this module
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


MARK_UNREACHABLE = _upsert("unreachable_projects", "project_id", ("as_of", "marked_at"))
SAVE_SNAPSHOT = _upsert("snapshots", "target", ("data", "updated_at"))
# The one row `writable` rewrites (id 1): a committed write, so a full disk shows.
WRITE_PROBE = _upsert("journal_probe", "id", ("written_at",))

LOAD_SNAPSHOT = "SELECT data FROM snapshots WHERE target = ?"

# Only the newest event of a target matters: it replaces whatever is still queued.
SUPERSEDE_QUEUED = (
    "UPDATE jobs SET state = ?, updated_at = ? WHERE target = ? AND state = ? RETURNING id"
)
INSERT_JOB = (
    "INSERT INTO jobs(target, kind, head_sha, payload, event_uuid, state, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
# A job that makes catch-up's redundant (`enqueue`): one of its target queued, running, or
# created since catch-up read the MR.
JOB_WAITING = "SELECT 1 FROM jobs WHERE target = ? AND (state IN (?, ?) OR created_at >= ?) LIMIT 1"
# The columns `job_from_row` reads from a claimed job, `contested` included: the job replaced
# an older job of its target with another head (that job was superseded at or after this
# one was journaled).
CLAIMED_JOB_COLUMNS = (
    "id, target, kind, head_sha, payload, attempts, event_uuid, "
    "EXISTS (SELECT 1 FROM jobs AS older WHERE older.target = jobs.target "
    "AND older.id < jobs.id AND older.state = 'superseded' "
    "AND older.head_sha <> jobs.head_sha AND older.updated_at >= jobs.created_at) AS contested"
)
COUNT_QUEUED = "SELECT COUNT(*) AS n FROM jobs WHERE state = ?"
RETRY_FAILED = (
    "UPDATE jobs SET state = ?, updated_at = ? WHERE state = ? AND updated_at < ? "
    "AND attempts < ? AND NOT EXISTS (SELECT 1 FROM jobs AS other "
    "WHERE other.target = jobs.target AND other.id > jobs.id)"
)
PROJECTS_SEEN = (
    "SELECT project_id, last_event_at FROM projects WHERE NOT EXISTS ("
    "SELECT 1 FROM unreachable_projects AS u WHERE u.project_id = projects.project_id "
    "AND u.as_of >= projects.last_event_at)"
)


def prune_statements(
    *, keys_older_than: float, jobs_older_than: float
) -> list[tuple[str, tuple[Any, ...]]]:
    """What `prune` runs, in this order and in one transaction, with its parameters."""
    return [
        ("DELETE FROM deliveries WHERE received_at < ?", (keys_older_than,)),
        (
            "DELETE FROM jobs WHERE state IN (?, ?, ?) AND updated_at < ?",
            (DONE, SUPERSEDED, FAILED, jobs_older_than),
        ),
        # A project marked unreachable, with no delivery since, for longer than retention.
        (
            "DELETE FROM projects WHERE EXISTS (SELECT 1 FROM unreachable_projects AS u "
            "WHERE u.project_id = projects.project_id "
            "AND u.as_of >= projects.last_event_at AND u.marked_at < ?)",
            (jobs_older_than,),
        ),
        # Marks of projects pruned, or forgotten because a delivery came after them.
        (
            "DELETE FROM unreachable_projects WHERE NOT EXISTS (SELECT 1 FROM projects AS p "
            "WHERE p.project_id = unreachable_projects.project_id "
            "AND p.last_event_at <= unreachable_projects.as_of)",
            (),
        ),
        (
            "DELETE FROM snapshots WHERE target NOT IN "
            "(SELECT target FROM snapshots ORDER BY updated_at DESC LIMIT ?)",
            (MAX_SNAPSHOTS,),
        ),
    ]


INSERT_WAIVER = (
    "INSERT INTO waivers(project_id, mr_iid, rule, location, fingerprints, reason, "
    "author, created_at, expires_at, head_sha) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "RETURNING id"
)
WITHDRAW_WAIVERS = (
    "UPDATE waivers SET withdrawn_at = ?, withdrawn_by = ? WHERE project_id = ? "
    "AND mr_iid = ? AND rule = ? AND withdrawn_at IS NULL AND expires_at > ?"
)
# The columns `waiver_from_row` reads, in the SELECTs of both engines.
SELECT_WAIVERS = (
    "SELECT id, project_id, mr_iid, rule, location, fingerprints, reason, author, created_at, "
    "expires_at, head_sha, withdrawn_at, withdrawn_by FROM waivers "
)
WAIVERS_OF = (
    SELECT_WAIVERS + "WHERE project_id = ? AND mr_iid = ? "
    "AND withdrawn_at IS NULL ORDER BY id DESC LIMIT ?"
)
# `expiry_handled` is an INTEGER in SQLite, a BOOLEAN in PostgreSQL: SQLite reads TRUE and
# FALSE as 1 and 0, and PostgreSQL plans `= FALSE` as `NOT expiry_handled`, its index's.
EXPIRED_WAIVERS = (
    "SELECT DISTINCT project_id, mr_iid FROM waivers WHERE expiry_handled = FALSE "
    "AND expires_at <= ? AND withdrawn_at IS NULL LIMIT ?"
)
MARK_EXPIRY_HANDLED = (
    "UPDATE waivers SET expiry_handled = TRUE WHERE project_id = ? AND mr_iid = ? "
    "AND expires_at <= ?"
)
PRUNE_WAIVERS = "DELETE FROM waivers WHERE expires_at < ? OR withdrawn_at < ?"


def job_values(job: NewJob, now: float) -> tuple[Any, ...]:
    """`INSERT_JOB`'s parameters: the job, queued `now`."""
    return (job.target, job.kind, job.head_sha, job.payload, job.event_uuid, QUEUED, now, now)


def _waiver_values(waiver: NewWaiver) -> tuple[Any, ...]:
    return (
        waiver.project_id,
        waiver.mr_iid,
        waiver.rule,
        waiver.location,
        json.dumps(list(waiver.fingerprints)),
        waiver.reason,
        waiver.author,
        waiver.created_at,
        waiver.expires_at,
        waiver.head_sha,
    )


def job_from_row(row: Mapping[str, Any]) -> JobRecord:
    """A job from a row of either engine; `contested` when the query asked for it."""
    return JobRecord(
        id=int(row["id"]),
        target=str(row["target"]),
        kind=str(row["kind"]),
        head_sha=str(row["head_sha"]),
        payload=str(row["payload"]),
        attempts=int(row["attempts"]),
        event_uuid=row["event_uuid"],
        contested=bool(row.get("contested")),
    )


def waiver_from_row(row: dict[str, Any]) -> Waiver:
    """A waiver from a row of either engine."""
    withdrawn_at = row["withdrawn_at"]
    return Waiver(
        id=int(row["id"]),
        project_id=int(row["project_id"]),
        mr_iid=int(row["mr_iid"]),
        rule=str(row["rule"]),
        location=str(row["location"]),
        fingerprints=tuple(str(f) for f in json.loads(row["fingerprints"])),
        reason=str(row["reason"]),
        author=str(row["author"]),
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        head_sha=str(row["head_sha"]),
        withdrawn_at=float(withdrawn_at) if withdrawn_at is not None else None,
        withdrawn_by=row["withdrawn_by"],
    )
