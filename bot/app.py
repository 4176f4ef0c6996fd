"""The webhook server: `create_app(settings)` is the one place where things are wired.

The lifespan owns the one pooled `httpx.AsyncClient`, the journal, the workers and the
sweeper, and closes them on shutdown. Nothing runs at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import commands, config, policy, redaction, webhook
from bot.catchup import catch_up
from bot.checks import Services
from bot.checks import waive as waive_command
from bot.commands import CommandLimiter, CommandLimits
from bot.gitlab import GitLab, current_event_uuid, open_gitlab
from bot.jobs import JobRunner, job_for
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.routing import router
from bot.settings import Settings
from bot.startup import check_token
from bot.store import JobRecord, Store
from bot.stores import open_store
from bot.token_watch import TokenWatch

log = logging.getLogger(__name__)

# How often the sweeper prunes old keys and retries failed jobs.
SWEEP_SECONDS = 30.0
# Event names that get their own metrics label; anything else is counted as "other".
KNOWN_EVENTS = frozenset(
    {"Merge Request Hook", "Push Hook", "Note Hook", "System Hook", "Tag Push Hook"}
)


class BodyTooLarge(Exception):
    pass


@dataclass
class Runtime:
    """What the lifespan opened; the routes reach it through `app.state.runtime`."""

    services: Services
    runner: JobRunner
    store: Store
    http: httpx.AsyncClient


# With several replicas, one catches up per interval; it gives the lease up on shutdown.
CATCH_UP_LEASE = "catch-up"


def read_instance_defaults(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return config.load_instance_defaults(config.read_config_file(path), str(path))


@dataclass(frozen=True)
class Wiring:
    """What `create_app` decided, for the lifespan and the routes (`app.state.wiring`)."""

    settings: Settings
    base_config: dict[str, Any]
    metrics: Metrics
    token_watch: TokenWatch
    transport: httpx.AsyncBaseTransport | None
    clock: Callable[[], float]


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The ASGI app. `transport` replaces the network under the GitLab client (tests);
    `clock` is the time waivers are given, applied and expired by (tests move it on).

    Raises ConfigError when the instance defaults file (COMPLIANCE_CONFIG) is invalid.
    """
    base_config = read_instance_defaults(settings.compliance_config)
    metrics = Metrics()
    # Every sink (logs, journal, statuses, notes) scrubs these; see bot/redaction.py.
    redaction.register(
        settings.gitlab_token.get_secret_value(),
        settings.webhook_secret.get_secret_value(),
        settings.webhook_signing_token.get_secret_value()
        if settings.webhook_signing_token is not None
        else None,
    )
    app = Starlette(
        routes=[
            Route("/webhook", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.wiring = Wiring(
        settings,
        base_config,
        metrics,
        # Learns from every GitLab answer whether the token is refused (401), for /readyz.
        TokenWatch(forward=metrics),
        transport,
        clock,
    )
    return app


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The client, the journal, the workers and the sweeper, for as long as the app serves."""
    wiring: Wiring = app.state.wiring
    settings = wiring.settings
    async with open_gitlab(
        settings, transport=wiring.transport, observer=wiring.token_watch
    ) as gitlab:
        token = await check_token(gitlab.http)
        if token.refused is not None:
            # `serve` set `stop_serving`: it ends the server before it takes a request,
            # and exits 2 with this line (bot/cli.py).
            app.state.refused = token.refused
            stop_serving = getattr(app.state, "stop_serving", None)
            if stop_serving is None:
                raise RuntimeError(token.refused)
            log.error("%s", token.refused)
            stop_serving()
            yield
            return
        if token.user is not None:
            gitlab.remember_current_user(token.user)
        policy.configure(
            gitlab,
            project_name=settings.compliance_policy_project,
            ttl=settings.policy_cache_seconds,
        )
        async with (
            open_store(
                str(settings.compliance_db),
                lease_seconds=settings.job_lease_seconds,
                pool_size=settings.db_pool_size,
                sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
            ) as store,
            _serving(
                app, settings, gitlab, store, wiring.metrics, wiring.base_config, wiring.clock
            ),
        ):
            yield


async def receive_webhook(request: Request) -> JSONResponse:
    wiring: Wiring = request.app.state.wiring
    settings, metrics = wiring.settings, wiring.metrics
    started = time.monotonic()
    event_name = request.headers.get("x-gitlab-event", "")
    fields: dict[str, object] = {
        "delivery": request.headers.get("x-gitlab-webhook-uuid"),
        "event": event_name,
    }

    def answer(outcome: str, status: int, body: dict[str, str]) -> JSONResponse:
        label = event_name if event_name in KNOWN_EVENTS else "other"
        metrics.deliveries.labels(label, outcome).inc()
        duration_ms = round((time.monotonic() - started) * 1e3, 2)
        level = logging.WARNING if status >= 400 else logging.INFO
        log.log(level, "delivery", extra={**fields, "outcome": outcome, "duration_ms": duration_ms})
        return JSONResponse(body, status_code=status)

    runtime: Runtime = request.app.state.runtime
    try:
        webhook.verify_token(
            settings.webhook_secret.get_secret_value(), request.headers.get("x-gitlab-token")
        )
    except webhook.InvalidToken:
        return answer("invalid token", 401, {"error": "invalid token"})
    try:
        body = await _read_capped(request, settings.max_body_bytes)
    except ClientDisconnect:
        # The client went away, or was closed for sending too slowly (bot/connections.py).
        return answer("disconnected", 400, {"error": "incomplete body"})
    except BodyTooLarge:
        return answer(
            "too large", 413, {"error": f"body larger than {settings.max_body_bytes} bytes"}
        )
    try:
        if settings.webhook_signing_token is not None:
            webhook.verify_signature(
                settings.webhook_signing_token.get_secret_value(),
                request.headers,
                body,
                now=time.time(),
            )
        payload = webhook.decode_body(body)
    except webhook.InvalidSignature as exc:
        return answer("invalid signature", 401, {"error": str(exc)})
    except webhook.MalformedBody as exc:
        return answer("malformed", 400, {"error": str(exc)})

    event = webhook.parse_event(event_name, payload)
    if isinstance(event, webhook.Ignored):
        fields["reason"] = event.reason
        outcome = "ignored: missing fields" if event.malformed else "ignored"
        return answer(outcome, 202, {"status": "ignored", "reason": event.reason})
    fields["project"] = event.project_id
    if isinstance(event, webhook.NoteEvent):
        fields["mr"] = event.mr_iid
        if event.mr_iid is None or commands.parse(event.body) is None:
            return answer("ignored", 202, {"status": "ignored", "reason": "no command"})
    elif isinstance(event, webhook.MergeRequestEvent):
        fields["mr"] = event.iid
    if runtime.runner.closing:
        # Shutting down: GitLab will not retry, but the catch-up on the next start will.
        return answer("shutting down", 503, {"error": "shutting down"})

    key = webhook.idempotency_key(request.headers, event_name, body)
    job = job_for(event, event_uuid=request.headers.get("x-gitlab-event-uuid"))
    # Journaled before the answer: once GitLab has its 2xx, the event is on disk.
    try:
        accepted = await runtime.store.accept(
            key, job, project_id=event.project_id, now=time.time()
        )
    except Exception as exc:
        # Locked by another process past SQLITE_BUSY_TIMEOUT_MS, a full disk, PostgreSQL
        # down: the event is not on disk, so never a 2xx (DESIGN.md, invariant 4). GitLab
        # does not retry; the 503 shows in the hook's recent events, and catch-up finds
        # the MR once the journal takes writes again.
        fields["error"] = f"{type(exc).__name__}: {exc}"
        return answer("journal unavailable", 503, {"error": "journal unavailable"})
    if accepted.duplicate:
        runtime.runner.stats.duplicates += 1
        return answer("duplicate", 200, {"status": "duplicate"})
    runtime.runner.stats.accepted += 1
    runtime.runner.stats.superseded += len(accepted.superseded)
    metrics.superseded.inc(len(accepted.superseded))
    runtime.runner.supersede_running(job.target, job.head_sha)
    runtime.runner.wake()
    return answer("accepted", 202, {"status": "accepted"})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    wiring: Wiring = request.app.state.wiring
    runtime: Runtime = request.app.state.runtime
    if runtime.runner.closing:
        return JSONResponse({"status": "shutting down"}, status_code=503)
    if not await runtime.store.writable():
        return JSONResponse({"status": "store not writable"}, status_code=503)
    if await wiring.token_watch.still_refused(runtime.services.gitlab):
        return JSONResponse({"status": "GitLab refuses the token (401)"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    metrics = request.app.state.wiring.metrics
    runtime: Runtime = request.app.state.runtime
    metrics.queue_depth.set(await runtime.runner.queue_depth())
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@contextlib.asynccontextmanager
async def _serving(
    app: Starlette,
    settings: Settings,
    gitlab: GitLab,
    store: Store,
    metrics: Metrics,
    base_config: dict[str, Any],
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[None]:
    """The workers and the sweeper over an open client and journal, for as long as the
    server serves."""
    http = gitlab.http
    services = Services(
        gitlab=gitlab,
        status_name=settings.compliance_status_name,
        base_config=base_config,
        memory=store,
        running_status_delay=settings.running_status_delay_seconds,
        command_limiter=CommandLimiter(
            CommandLimits(
                per_merge_request=settings.command_limit_per_mr,
                per_user=settings.command_limit_per_user,
                window_seconds=settings.command_limit_window_seconds,
            )
        ),
        clock=clock,
    )

    runner = JobRunner(
        store,
        functools.partial(run_job, services),
        workers=settings.workers,
        grace_seconds=settings.shutdown_grace_seconds,
        metrics=metrics,
        lease_seconds=settings.job_lease_seconds,
    )
    app.state.runtime = Runtime(services, runner, store, http)
    await runner.start()
    sweeper = asyncio.get_running_loop().create_task(
        _sweep(settings, services, store, runner), name="sweeper"
    )
    try:
        yield
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await runner.aclose()
        with contextlib.suppress(Exception):
            await store.release_lease(CATCH_UP_LEASE)


async def run_job(services: Services, job: JobRecord) -> None:
    """Run one journaled job: its event, to the behaviour the router names."""
    # Calls made for this delivery carry its X-Gitlab-Event-UUID.
    token = current_event_uuid.set(job.event_uuid)
    try:
        await router.dispatch(services, webhook.event_from_json(job.kind, job.payload), job)
    finally:
        current_event_uuid.reset(token)


async def _sweep(settings: Settings, services: Services, store: Store, runner: JobRunner) -> None:
    """Housekeeping on the loop: catch-up on start and periodically, re-checks of MRs whose
    waivers expired, retries of failed checks, and pruning of old idempotency keys,
    finished and failed jobs, and projects GitLab does not show the bot."""
    next_catch_up = 0.0
    while True:
        now = time.time()
        try:
            if now >= next_catch_up:
                next_catch_up = now + settings.catchup_interval_seconds
                # With several replicas, one of them catches up per interval (a lease).
                holds = await store.take_lease(
                    CATCH_UP_LEASE, seconds=settings.catchup_interval_seconds * 0.9, now=now
                )
                if holds and await catch_up(
                    services.gitlab, store, status_name=services.status_name
                ):
                    runner.wake()
            # An expired waiver turns its MR's status back without waiting for a push.
            if await waive_command.queue_expired(services, store):
                runner.wake()
            if await _retry_failed(settings, store, now):
                runner.wake()
            await store.prune(
                keys_older_than=now - settings.dedup_ttl_days * 86400,
                jobs_older_than=now - settings.journal_retention_days * 86400,
            )
        except Exception:
            log.exception("sweep failed; trying again later")
        await asyncio.sleep(min(SWEEP_SECONDS, settings.catchup_interval_seconds))


async def _retry_failed(settings: Settings, store: Store, now: float) -> int:
    """Queue failed checks again: soon for their first runs, then seldom, for as long as the
    journal keeps them. A check whose last run could not even post "could not complete"
    (GitLab down) left `running` on its head; only a later run ends it, so the runs never
    stop while the job is kept."""
    soon = await store.retry_failed(
        older_than=now - settings.retry_failed_after_seconds,
        max_attempts=settings.retry_failed_attempts,
        now=now,
    )
    seldom_runs = math.ceil(
        settings.journal_retention_days * 86400 / settings.retry_exhausted_after_seconds
    )
    seldom = await store.retry_failed(
        older_than=now - settings.retry_exhausted_after_seconds,
        max_attempts=settings.retry_failed_attempts + seldom_runs,
        now=now,
    )
    return soon + seldom


async def _read_capped(request: Request, cap: int) -> bytes:
    """The body, refusing (without reading further) anything over `cap` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
