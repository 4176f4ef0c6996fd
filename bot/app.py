"""The webhook server: `create_app(settings)` is the one place where things are wired.

The lifespan owns the one pooled `httpx.AsyncClient` and the job runner, and closes both on
shutdown. Nothing runs at import.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import webhook
from bot.checks import Services
from bot.checks import merge_request as merge_request_check
from bot.checks import push as push_check
from bot.gitlab import GitLab, RetryPolicy
from bot.jobs import JobRunner, SeenKeys
from bot.settings import Settings

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


@dataclass
class Runtime:
    """What the lifespan opened; the routes reach it through `app.state.runtime`."""

    services: Services
    runner: JobRunner
    seen: SeenKeys
    http: httpx.AsyncClient


def _tls(settings: Settings) -> ssl.SSLContext | bool:
    if not settings.gitlab_verify_tls:
        return False
    if settings.gitlab_ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.gitlab_ca_bundle))
    return True


def open_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one pooled client per process; its pool size is the cap on TCP connections."""
    return httpx.AsyncClient(
        base_url=settings.api_url,
        headers={
            # https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens
            "PRIVATE-TOKEN": settings.gitlab_token.get_secret_value(),
            "User-Agent": "compliance-bot",
        },
        limits=httpx.Limits(
            max_connections=settings.http_pool_size,
            max_keepalive_connections=settings.http_pool_size,
        ),
        timeout=httpx.Timeout(settings.http_timeout, connect=10.0),
        verify=_tls(settings),
        transport=transport,
    )


def create_app(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The ASGI app. `transport` replaces the network under the GitLab client (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_http_client(settings, transport) as http:
            gitlab = GitLab(
                http,
                retry=RetryPolicy(
                    attempts=settings.retry_attempts,
                    total_seconds=settings.retry_total_seconds,
                    base_delay=settings.retry_base_delay,
                ),
                concurrency=settings.gitlab_concurrency,
            )
            runner = JobRunner(workers=settings.workers)
            app.state.runtime = Runtime(
                services=Services(gitlab=gitlab, status_name=settings.compliance_status_name),
                runner=runner,
                seen=SeenKeys(),
                http=http,
            )
            try:
                yield
            finally:
                await runner.aclose()

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
        key = webhook.idempotency_key(request.headers, event_name, body)
        if not runtime.seen.add(key):
            return JSONResponse({"status": "duplicate"}, status_code=200)
        services = runtime.services
        if isinstance(event, webhook.MergeRequestEvent):
            mr_event = event
            runtime.runner.submit(
                event.target, lambda: merge_request_check.check(services, mr_event)
            )
        elif isinstance(event, webhook.PushEvent):
            push_event = event
            runtime.runner.submit(event.target, lambda: push_check.check(services, push_event))
        else:
            # Note Hook: accepted; MR commands arrive in a later change.
            return JSONResponse({"status": "ignored", "reason": "no command"}, status_code=202)
        return JSONResponse({"status": "accepted"}, status_code=202)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/webhook", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


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
