"""The webhook server: `create_app(settings)` is the one place where things are wired.

The lifespan owns the one pooled `httpx.AsyncClient`, the journal, the workers and the
sweeper, and closes them on shutdown. Nothing runs at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import config, webhook
from bot.catchup import catch_up
from bot.checks import Services
from bot.checks import merge_request as merge_request_check
from bot.checks import push as push_check
from bot.gitlab import open_gitlab
from bot.jobs import JobRunner
from bot.settings import Settings
from bot.store import JobRecord, NewJob, SqliteStore, Store

log = logging.getLogger(__name__)

# How often the sweeper prunes old keys and retries failed jobs.
SWEEP_SECONDS = 30.0


class BodyTooLarge(Exception):
    pass


@dataclass
class Runtime:
    """What the lifespan opened; the routes reach it through `app.state.runtime`."""

    services: Services
    runner: JobRunner
    store: Store
    http: httpx.AsyncClient


def read_instance_defaults(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return config.load_instance_defaults(path.read_text(encoding="utf-8"), str(path))


def create_app(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The ASGI app. `transport` replaces the network under the GitLab client (tests).

    Raises ConfigError when the instance defaults file (COMPLIANCE_CONFIG) is invalid.
    """
    base_config = read_instance_defaults(settings.compliance_config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = SqliteStore(settings.compliance_db)
        try:
            async with open_gitlab(settings, transport=transport) as gitlab:
                http = gitlab.http
                services = Services(
                    gitlab=gitlab,
                    status_name=settings.compliance_status_name,
                    base_config=base_config,
                )

                async def run(job: JobRecord) -> None:
                    event = webhook.event_from_json(job.kind, job.payload)
                    if isinstance(event, webhook.MergeRequestEvent):
                        await merge_request_check.check(services, event)
                    else:
                        await push_check.check(services, event)

                runner = JobRunner(
                    store,
                    run,
                    workers=settings.workers,
                    grace_seconds=settings.shutdown_grace_seconds,
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
        finally:
            await store.close()

    async def receive_webhook(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        event_name = request.headers.get("x-gitlab-event", "")
        try:
            webhook.verify_token(
                settings.webhook_secret.get_secret_value(), request.headers.get("x-gitlab-token")
            )
        except webhook.InvalidToken:
            log.warning("webhook refused: wrong or missing token", extra={"event": event_name})
            return JSONResponse({"error": "invalid token"}, status_code=401)
        try:
            body = await _read_capped(request, settings.max_body_bytes)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"body larger than {settings.max_body_bytes} bytes"}, status_code=413
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
            log.warning("webhook refused: %s", exc, extra={"event": event_name})
            return JSONResponse({"error": str(exc)}, status_code=401)
        except webhook.MalformedBody as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

        event = webhook.parse_event(event_name, payload)
        if isinstance(event, webhook.Ignored):
            if event.malformed:
                log.warning("webhook ignored: %s", event.reason, extra={"event": event_name})
            return JSONResponse({"status": "ignored", "reason": event.reason}, status_code=202)
        if runtime.runner.closing:
            # Shutting down: GitLab will not retry, but the catch-up on the next start will.
            return JSONResponse({"error": "shutting down"}, status_code=503)

        key = webhook.idempotency_key(request.headers, event_name, body)
        job = None
        if not isinstance(event, webhook.NoteEvent):
            job = NewJob(
                target=event.target,
                kind=webhook.event_kind(event),
                head_sha=webhook.event_head(event),
                payload=webhook.event_to_json(event),
            )
        # Journaled before the answer: once GitLab has its 2xx, the event is on disk.
        accepted = await runtime.store.accept(
            key, job, project_id=event.project_id, now=time.time()
        )
        if accepted.duplicate:
            runtime.runner.stats.duplicates += 1
            return JSONResponse({"status": "duplicate"}, status_code=200)
        runtime.runner.stats.accepted += 1
        runtime.runner.stats.superseded += len(accepted.superseded)
        if job is None:
            # Note Hook: accepted; MR commands arrive in a later change.
            return JSONResponse({"status": "ignored", "reason": "no command"}, status_code=202)
        runtime.runner.supersede_running(job.target, job.head_sha)
        runtime.runner.wake()
        return JSONResponse({"status": "accepted"}, status_code=202)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime = request.app.state.runtime
        if runtime.runner.closing:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if not await runtime.store.writable():
            return JSONResponse({"status": "store not writable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/webhook", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _sweep(settings: Settings, services: Services, store: Store, runner: JobRunner) -> None:
    """Housekeeping on the loop: catch-up on start and periodically, retries of failed
    checks, and pruning of old idempotency keys and finished jobs."""
    next_catch_up = 0.0
    while True:
        now = time.time()
        try:
            if now >= next_catch_up:
                next_catch_up = now + settings.catchup_interval_seconds
                if await catch_up(services.gitlab, store, status_name=services.status_name):
                    runner.wake()
            if await store.retry_failed(
                older_than=now - settings.retry_failed_after_seconds,
                max_attempts=settings.retry_failed_attempts,
                now=now,
            ):
                runner.wake()
            keep = settings.dedup_ttl_days * 86400
            await store.prune(keys_older_than=now - keep, jobs_older_than=now - keep)
        except Exception:
            log.exception("sweep failed; trying again later")
        await asyncio.sleep(min(SWEEP_SECONDS, settings.catchup_interval_seconds))


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
