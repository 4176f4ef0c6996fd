"""The webhook contract: what GitLab gets back for every kind of delivery, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time

import httpx

from tests.conftest import Bot, delivery_calls, running_bot
from tests.fake_gitlab import FakeGitLab
from tests.payloads import fixture
from tests.scenarios import compliant_project, hook_for


async def test_body_that_is_not_a_json_object_gets_400_with_a_reason(
    fake: FakeGitLab, bot: Bot
) -> None:
    for body in (b"{not json", b"[]", b"null"):
        response = await bot.send("Merge Request Hook", body)
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]
        assert "\n" not in response.json()["error"]
    assert delivery_calls(fake) == []


async def test_oversized_body_gets_413_without_being_read_past_the_cap(
    fake: FakeGitLab,
) -> None:
    async with running_bot(fake, max_body_bytes=1024) as bot:
        declared = await bot.send("Push Hook", b"{" + b" " * 4096 + b"}")
        assert declared.status_code == 413

        # A chunked body with no Content-Length, sent slowly: the bot must answer 413 once
        # the cap is passed, while the sender is still sending.
        host, port = bot.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /webhook HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n"
            b"X-Gitlab-Token: hook-secret-5f0c\r\nX-Gitlab-Event: Push Hook\r\n\r\n"
        )
        answer = b""
        sent = 0
        while not answer and sent < 1000:
            writer.write(b"200\r\n" + b" " * 512 + b"\r\n")
            await writer.drain()
            sent += 1
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(200), 0.02)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 413")
        assert sent * 512 < 8 * 1024, f"read {sent * 512} bytes before refusing"
    assert delivery_calls(fake) == []


async def test_unknown_events_and_partial_payloads_get_2xx_and_are_ignored(
    fake: FakeGitLab, bot: Bot
) -> None:
    cases = [
        ("Pipeline Hook", fixture("pipeline.json")),
        ("Tag Push Hook", fixture("tag_push.json")),
        ("Issue Hook", {"object_kind": "issue"}),
        ("", {"object_kind": "push"}),
        ("Merge Request Hook", fixture("merge_request_update_oldrev_partial.json")),
        ("Merge Request Hook", fixture("merge_request_system_reset_partial.json")),
        ("Merge Request Hook", fixture("merge_request_rerequest_review_partial.json")),
        ("System Hook", {"object_kind": "user_create", "event_name": "user_create"}),
    ]
    for event, payload in cases:
        response = await bot.send(event, payload)
        assert response.status_code == 202, (event, response.text)
        assert response.json()["status"] == "ignored"
    await bot.settle()
    assert delivery_calls(fake) == []


async def test_note_hook_is_accepted_without_acting(fake: FakeGitLab, bot: Bot) -> None:
    response = await bot.send("Note Hook", fixture("note_merge_request.json"))
    assert response.status_code == 202
    await bot.settle()
    assert delivery_calls(fake) == []


async def test_closed_and_merged_mrs_are_not_checked(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    for action in ("close", "merge", "approved"):
        response = await bot.send("Merge Request Hook", hook_for(mr, action=action))
        assert response.status_code == 202
        assert response.json()["status"] == "ignored"
    await bot.settle()
    assert delivery_calls(fake) == []


async def test_system_hook_merge_request_is_checked(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    assert (await bot.send("System Hook", hook_for(mr))).status_code == 202
    await bot.settle()
    assert [s["status"] for s in fake.statuses(project.id, mr.head_sha)] == ["success"]


async def test_webhook_answers_before_calling_gitlab(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    fake.latency = 0.5  # every GitLab call is slow
    started = time.monotonic()
    response = await bot.send("Merge Request Hook", hook_for(mr))
    answered = time.monotonic() - started
    assert response.status_code == 202
    assert answered < 0.5, "the answer waited for GitLab"
    await bot.settle()
    assert [s["status"] for s in fake.statuses(project.id, mr.head_sha)] == ["success"]


async def test_health(bot: Bot) -> None:
    response = await bot.client.get(f"{bot.url}/healthz")
    assert response.status_code == 200


def _signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


async def test_signed_deliveries_are_verified_when_a_signing_token_is_set(
    fake: FakeGitLab,
) -> None:
    key = b"k" * 32
    token = "whsec_" + base64.b64encode(key).decode()
    async with running_bot(fake, webhook_signing_token=token) as bot:
        body = json.dumps(fixture("pipeline.json")).encode()
        now = str(int(time.time()))
        good = {"webhook-id": "m1", "webhook-timestamp": now}
        good["webhook-signature"] = _signature(key, "m1", now, body)
        assert (await bot.send("Pipeline Hook", body, headers=good)).status_code == 202

        forged = dict(good, **{"webhook-signature": _signature(b"x" * 32, "m1", now, body)})
        assert (await bot.send("Pipeline Hook", body, headers=forged)).status_code == 401

        stale_ts = str(int(time.time()) - 3600)
        stale = {"webhook-id": "m1", "webhook-timestamp": stale_ts}
        stale["webhook-signature"] = _signature(key, "m1", stale_ts, body)
        assert (await bot.send("Pipeline Hook", body, headers=stale)).status_code == 401


async def test_lifespan_closes_the_one_client(fake: FakeGitLab) -> None:
    async with running_bot(fake) as bot:
        client: httpx.AsyncClient = bot.app.state.runtime.http
        assert not client.is_closed
    assert client.is_closed
