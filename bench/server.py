"""Server figures: webhook answer latency, end-to-end throughput, connections and memory.

The bot runs as a real `compliance-bot serve` process; the fake GitLab and the senders run in
this process, over loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import WEBHOOK_SECRET
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.processes import BotProcess, deliver
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/<pid>/stat, fields 14
    and 15, in clock ticks): the process's own rusage, read from outside it."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, field 3 on
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _setup(fake: FakeGitLab, count: int) -> list[MergeRequest]:
    project = compliant_project(fake)
    mrs = []
    for i in range(count):
        fake.commit(project.id, f"b-{i}", message=f"feat: change {i}")
        mrs.append(fake.open_mr(project.id, source_branch=f"b-{i}", description="Bench."))
    return mrs


async def deliver_updates(
    fake: FakeGitLab, targets: list[MergeRequest], events: int, urls: list[str]
) -> dict[str, float]:
    """Part b's workload: `events` MR updates, each after a new commit, spread over the
    targets in turn and sent round-robin to `urls`. Returns when each head was sent."""
    sent_at: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(events):
            target = targets[i % len(targets)]
            old = target.head_sha
            fake.commit(target.source_project_id, target.source_branch, message=f"fix: {i}")
            payload = hook_for(target, action="update", oldrev=old)
            sent_at[target.head_sha] = time.monotonic()
            response = await deliver(client, urls[i % len(urls)], MR_HOOK, payload)
            assert response.status_code == 202
    return sent_at


async def _final_times(
    fake: FakeGitLab, heads: dict[str, float], deadline: float
) -> dict[str, float]:
    """When each head got its final status, polled from the fake's state."""
    done: dict[str, float] = {}
    while len(done) < len(heads) and time.monotonic() < deadline:
        for sha in heads.keys() - done.keys():
            statuses = fake.statuses(1, sha)
            if statuses and statuses[-1]["status"] in ("success", "failed"):
                done[sha] = time.monotonic()
        await asyncio.sleep(0.01)
    return done


async def measure(
    *, senders: int = 200, latency_requests: int = 2000, events: int = 500, mrs: int = 100,
    rss_events: int = 10_000,
) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # a. Webhook answer latency with the journal on, many concurrent senders. The
        # events name MRs GitLab does not have, so the background work ends fast and the
        # figure is the answer path: verify, parse, journal, answer.
        fake = FakeGitLab()
        async with fake.serve():
            [mr] = _setup(fake, 1)
            # One worker: the figure is the answer path, not the checks competing with it.
            bot = BotProcess(fake, Path(tmp) / "a.db", WORKERS="1")
            await bot.start()
            latencies: list[float] = []
            limits = httpx.Limits(max_connections=senders)
            bodies = [
                json.dumps(hook_for(mr, iid=10_000 + i)).encode() for i in range(latency_requests)
            ]
            headers = {
                "Content-Type": "application/json",
                "X-Gitlab-Event": MR_HOOK,
                "X-Gitlab-Token": WEBHOOK_SECRET,
            }
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:

                async def sender() -> None:
                    while bodies:
                        body = bodies.pop()
                        started = time.monotonic()
                        response = await client.post(
                            f"{bot.url}/webhook",
                            content=body,
                            headers={**headers, "Idempotency-Key": str(len(bodies))},
                        )
                        latencies.append(time.monotonic() - started)
                        assert response.status_code == 202

                await asyncio.gather(*(sender() for _ in range(senders)))
            log = await bot.stop()
        handled = [
            float(entry["duration_ms"])
            for entry in (json.loads(line) for line in log.splitlines() if line.startswith("{"))
            if entry.get("message") == "delivery"
        ]
        results["webhook_latency_ms"] = {
            "requests": latency_requests,
            "senders": senders,
            "p50": round(statistics.median(latencies) * 1e3, 2),
            "p99": round(_percentile(latencies, 0.99) * 1e3, 2),
            "in_server_p50": round(statistics.median(handled), 3),
            "in_server_p99": round(_percentile(handled, 0.99), 3),
        }

        # b + d. End to end with 30 ms per GitLab call: events over MRs, new commits each.
        fake = FakeGitLab()
        async with fake.serve():
            targets = _setup(fake, mrs)
            fake.latency = 0.03
            pool = 16
            bot = BotProcess(fake, Path(tmp) / "b.db", HTTP_POOL_SIZE=str(pool))
            await bot.start()
            assert bot.process is not None
            cpu_started = cpu_seconds(bot.process.pid)
            started = time.monotonic()
            sent_at = await deliver_updates(fake, targets, events, [bot.url])
            newest = {t.head_sha: sent_at[t.head_sha] for t in targets}
            finished = await _final_times(fake, newest, time.monotonic() + 600)
            elapsed = max(finished.values()) - started
            bot_cpu = cpu_seconds(bot.process.pid) - cpu_started
            delays = [finished[sha] - newest[sha] for sha in finished]
            await bot.stop()
            # Figure e counts these as the bot's errors: a head left without a verdict, and a
            # verdict that says the check could not complete.
            could_not_complete = sum(
                1
                for sha in sent_at
                for status in fake.statuses(1, sha)
                if status["status"] in ("success", "failed")
                and str(status["description"] or "").startswith("could not complete")
            )
            results["end_to_end"] = {
                "events": events,
                "mrs": mrs,
                "gitlab_latency_ms": 30,
                "events_per_s": round(events / elapsed, 1),
                # The bot process's own CPU (the fake GitLab and the senders run here).
                "bot_cpu_seconds": round(bot_cpu, 3),
                "cpu_ms_per_event": round(bot_cpu / events * 1e3, 2),
                "calls_per_event": round(len(fake.requests) / events, 2),
                "newest_head_p50_s": round(statistics.median(delays), 3),
                "newest_head_p99_s": round(_percentile(delays, 0.99), 3),
                "all_final": len(finished) == len(newest),
                "not_final": len(newest) - len(finished),
                "could_not_complete": could_not_complete,
                "gitlab_calls": len(fake.requests),
                "tcp_connections": fake.connections(),
                "pool_size": pool,
            }

        # f. Memory: RSS of the bot process before and after a burst of events.
        fake = FakeGitLab()
        async with fake.serve():
            targets = _setup(fake, 100)
            bot = BotProcess(fake, Path(tmp) / "f.db")
            await bot.start()
            assert bot.process is not None
            before = _rss_mb(bot.process.pid)
            async with httpx.AsyncClient(timeout=30) as client:
                for i in range(rss_events):
                    payload = hook_for(targets[i % len(targets)], title=f"Bench {i}")
                    assert (await deliver(client, bot.url, MR_HOOK, payload)).status_code == 202
            queued_peak = _rss_mb(bot.process.pid)
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(6000):
                    metrics = (await client.get(f"{bot.url}/metrics")).text
                    if "compliance_queue_depth 0.0" in metrics:
                        break
                    await asyncio.sleep(0.1)
            after = _rss_mb(bot.process.pid)
            await bot.stop()
            results["rss_mb"] = {
                "events": rss_events,
                "before": round(before, 1),
                "after_accepting": round(queued_peak, 1),
                "after_draining": round(after, 1),
            }
    return results


def table(results: dict[str, Any]) -> str:
    a = results["webhook_latency_ms"]
    b = results["end_to_end"]
    f = results["rss_mb"]
    return "\n".join(
        [
            "Server (bot as a real process, fake GitLab over loopback)",
            f"a. webhook answer, {a['senders']} concurrent senders, {a['requests']} requests, "
            f"journal on: p50 {a['p50']} ms, p99 {a['p99']} ms as the senders see it; "
            f"inside the server p50 {a['in_server_p50']} ms, p99 {a['in_server_p99']} ms",
            f"b. end to end, {b['events']} events over {b['mrs']} MRs, "
            f"{b['gitlab_latency_ms']} ms per GitLab call: {b['events_per_s']} events/s, "
            f"{b['cpu_ms_per_event']} ms of bot CPU per event, {b['calls_per_event']} GitLab "
            f"calls per event; newest "
            f"head final after p50 {b['newest_head_p50_s']} s, p99 {b['newest_head_p99_s']} s; "
            f"all final: {b['all_final']}; {b['gitlab_calls']} GitLab calls",
            f"d. TCP connections to GitLab during b: {b['tcp_connections']} "
            f"(pool size {b['pool_size']})",
            f"f. RSS, {f['events']} events: {f['before']} MB before, {f['after_accepting']} MB "
            f"with the backlog queued, {f['after_draining']} MB after draining",
        ]
    )
