"""Structured logs from a real `serve` process: one JSON line per delivery and per job, and
never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx

from bot.logs import REDACTED, JsonFormatter
from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for, wait_until


def test_formatter_scrubs_secrets_that_slip_into_a_message() -> None:
    formatter = JsonFormatter(secrets=["glpat-abcdef123456"])
    record = logging.makeLogRecord(
        {"msg": "GET https://x/?private_token=%s", "args": ("glpat-abcdef123456",)}
    )
    line = formatter.format(record)
    assert "glpat-abcdef123456" not in line and REDACTED in line
    assert json.loads(line)["message"].endswith(REDACTED)


async def test_a_full_scenario_logs_json_lines_without_secrets(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 502, times=1)
    bot = BotProcess(fake, tmp_path / "journal.db")
    await bot.start()
    async with httpx.AsyncClient(timeout=10) as client:
        headers = {"X-Gitlab-Webhook-UUID": "delivery-1"}
        await client.post(
            f"{bot.url}/webhook",
            json=hook_for(mr),
            headers={
                **headers,
                "X-Gitlab-Event": "Merge Request Hook",
                "X-Gitlab-Token": WEBHOOK_SECRET,
            },
        )
        wrong = await deliver(client, bot.url, "Merge Request Hook", hook_for(mr))
        assert wrong.status_code == 202  # a second delivery of the same MR
        bad = await client.post(
            f"{bot.url}/webhook",
            json=hook_for(mr),
            headers={"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": "not-it"},
        )
        assert bad.status_code == 401
        await wait_until(
            lambda: (
                [s["status"] for s in fake.statuses(project.id, mr.head_sha)][-1:] == ["success"]
            )
        )
    output = await bot.stop()

    for secret in (fake.token, WEBHOOK_SECRET):
        assert secret not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output
    deliveries = [line for line in lines if line["message"] == "delivery"]
    assert [d["outcome"] for d in deliveries] == ["accepted", "accepted", "invalid token"]
    first = deliveries[0]
    assert first["delivery"] == "delivery-1" and first["project"] == project.id
    assert first["mr"] == mr.iid and first["duration_ms"] >= 0
    jobs = [line for line in lines if line["message"].startswith("job ")]
    assert jobs and all({"job", "project", "outcome"} <= set(j) for j in jobs)
    assert any(j["outcome"] == "done" and j["mr"] == str(mr.iid) for j in jobs)
