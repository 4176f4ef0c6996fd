"""Replicas: part b's end-to-end workload on 1, 2 and 3 replicas sharing PostgreSQL, and on
one process with SQLite, in one run.

Each configuration gets a fresh fake GitLab (30 ms per call) and a fresh database; the
deliveries go round-robin to the replicas, as a load balancer would send them. The figure is
events/s until every MR's newest head has its final status, the replicas' CPU per event (the
sum of their processes' own CPU; the fake GitLab and the driver run in this process, the
PostgreSQL server in its own), and the p99 from a head's delivery to its final status.

    python -m bench.replicas
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server import _final_times, _percentile, _setup, cpu_seconds, deliver_updates
from tests.fake_gitlab import FakeGitLab
from tests.postgres import postgres_server
from tests.processes import BotProcess


async def _run(journals: list[str], *, events: int, mrs: int, latency: float) -> dict[str, Any]:
    fake = FakeGitLab()
    async with fake.serve():
        targets = _setup(fake, mrs)
        fake.latency = latency
        bots = [BotProcess(fake, journal) for journal in journals]
        await asyncio.gather(*(bot.start() for bot in bots))
        pids = [bot.process.pid for bot in bots if bot.process is not None]
        cpu_started = sum(map(cpu_seconds, pids))
        started = time.monotonic()
        sent_at = await deliver_updates(fake, targets, events, [bot.url for bot in bots])
        newest = {t.head_sha: sent_at[t.head_sha] for t in targets}
        finished = await _final_times(fake, newest, time.monotonic() + 600)
        elapsed = max(finished.values()) - started
        # The replicas' own CPU, all of them (the fake GitLab and the driver run here; the
        # PostgreSQL server in its own processes).
        cpu = sum(map(cpu_seconds, pids)) - cpu_started
        delays = [finished[sha] - newest[sha] for sha in finished]
        await asyncio.gather(*(bot.stop() for bot in bots))
    return {
        "events_per_s": round(events / elapsed, 1),
        "cpu_ms_per_event": round(cpu / events * 1e3, 2),
        "calls_per_event": round(len(fake.requests) / events, 2),
        "p50_s": round(statistics.median(delays), 3),
        "p99_s": round(_percentile(delays, 0.99), 3),
        "all_final": len(finished) == len(newest),
        "gitlab_calls": len(fake.requests),
    }


async def measure(*, events: int = 500, mrs: int = 100, latency: float = 0.03) -> dict[str, Any]:
    results: dict[str, Any] = {"events": events, "mrs": mrs, "gitlab_latency_ms": latency * 1e3}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite, 1 process"] = await _run(
            [str(Path(tmp) / "journal.db")], events=events, mrs=mrs, latency=latency
        )
        with postgres_server() as server:
            if server is None:
                results["postgresql"] = "skipped: PostgreSQL server binaries are not installed"
                return results
            for count in (1, 2, 3):
                url = server.new_database()
                results[f"postgresql, {count} replica{'s' if count > 1 else ''}"] = await _run(
                    [url] * count, events=events, mrs=mrs, latency=latency
                )
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"g. replicas: {results['events']} events over {results['mrs']} MRs, "
        f"{results['gitlab_latency_ms']:.0f} ms per GitLab call, deliveries round-robin"
    ]
    for name, figures in results.items():
        if not isinstance(figures, dict):
            if isinstance(figures, str):
                lines.append(f"   {name}: {figures}")
            continue
        lines.append(
            f"   {name}: {figures['events_per_s']} events/s, {figures['cpu_ms_per_event']} ms "
            f"of replica CPU and {figures['calls_per_event']} GitLab calls per event; newest "
            f"head final after "
            f"p50 {figures['p50_s']} s, p99 {figures['p99_s']} s; all final: "
            f"{figures['all_final']}; {figures['gitlab_calls']} GitLab calls"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(asyncio.run(measure())))
