"""e. The design this project replaces, side by side with part b on the same workload.

The old tool: a webhook handler on python-gitlab (synchronous), run in a thread per
request, that builds a new client and a new thread pool for each event and reads everything
every time: the project, the MR, its commits (every page), its diffs, the target branch's
tree (the root, and `.gitlab/` recursively), the notes (to find its own) and the current
user (to know which note is its own). The reads go through the thread pool, all at once, as
the old tool did; the rules are the bot's own, so both judge alike. Then it posts a commit
status and creates or edits its note. An event whose handler raises is an error: the old
tool logged it and went on with the next.

    python -m bench.baseline --events 500 --mrs 100

The workload is part b's (`bench.server`): `events` MR "update" events over `mrs` MRs, a new
commit before each, 30 ms per GitLab call. The fake GitLab runs in a child process, so it
takes no CPU time from the client measured; beside its `/_fake/` routes it has one route
that makes the next event's commit and answers with that event's payload. Events go to an
outer pool of as many threads as the bot has workers, in arrival order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.calls import endpoint
from bot.config import CONFIG_PATHS, default_config, load
from bot.engine import evaluate, plan
from bot.gitlab import changed_file_from_api, commit_from_api
from bot.model import Report
from bot.report import NOTE_MARKER, render_note, status_description, status_state
from bot.rules.base import Context, MergeRequestFacts, ProjectFacts
from bot.rules.base import Scope as RuleScope
from bot.rules.repository import apply_changes
from bot.source import GITLAB_DIR
from bot.webhook import MergeRequestEvent, parse_event
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.fake_gitlab_server import serve, with_control_routes
from tests.scenarios import hook_for

MR_HOOK = "Merge Request Hook"
# The bot's default WORKERS: as many events in flight on each side.
OUTER_THREADS = 8
POOL_THREADS = 8
STATUS_NAME = "compliance"
MIN_RATIO = 10.0
ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


# -- the old tool -------------------------------------------------------------------------


def handle_event(url: str, token: str, payload: dict[str, Any]) -> None:
    """One MR event, handled the old way. Raises what went wrong."""
    import gitlab

    event = parse_event(MR_HOOK, payload)
    if not isinstance(event, MergeRequestEvent):
        raise TypeError(f"not a merge request event: {event}")
    gl = gitlab.Gitlab(url, private_token=token)
    # Lazy objects cost no call; every read below is one (or one per page).
    lazy_project = gl.projects.get(event.project_id, lazy=True)
    lazy_mr = lazy_project.mergerequests.get(event.iid, lazy=True)
    ref = event.target_branch
    diffs_path = f"/projects/{event.project_id}/merge_requests/{event.iid}/diffs"

    def gitlab_dir() -> list[dict[str, Any]]:
        # A repository without `.gitlab/` answers 404 (GitLab 17.7+).
        try:
            return list(
                lazy_project.repository_tree(path=GITLAB_DIR, ref=ref, recursive=True, get_all=True)
            )
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
            return []

    with ThreadPoolExecutor(max_workers=POOL_THREADS) as pool:

        def read(call: Callable[[], T]) -> Future[T]:
            return pool.submit(call)

        me = read(gl.auth)
        project = read(lambda: gl.projects.get(event.project_id))
        mr = read(lambda: lazy_project.mergerequests.get(event.iid))
        commits = read(lambda: [c.asdict() for c in lazy_mr.commits()])
        # python-gitlab's `changes()` is GitLab's deprecated /changes; /diffs replaced it.
        diffs = read(lambda: list(gl.http_list(diffs_path, iterator=True)))
        root = read(lambda: list(lazy_project.repository_tree(ref=ref, get_all=True)))
        dot_gitlab = read(gitlab_dir)
        notes = read(lambda: list(lazy_mr.notes.list(iterator=True)))
        paths = {
            str(item["path"])
            for item in [*root.result(), *dot_gitlab.result()]
            if item["type"] == "blob"
        }
        config_name = next((name for name in CONFIG_PATHS if name in paths), None)
        config = (
            load(lazy_project.files.raw(file_path=config_name, ref=ref).decode(), config_name)
            if config_name
            else default_config()
        )
        me.result()
        facts, details = project.result(), mr.result()
        changes = tuple(
            sorted(map(changed_file_from_api, diffs.result()), key=lambda c: c.new_path)
        )
        checks = plan(config, RuleScope.MERGE_REQUEST, ref)
        context = Context(
            scope=RuleScope.MERGE_REQUEST,
            branch=event.source_branch,
            target_branch=ref,
            commits=tuple(map(commit_from_api, reversed(commits.result()))),
            changes=changes,
            paths=apply_changes(paths, changes),
            project=ProjectFacts(
                description=facts.description or "", topics=tuple(facts.topics or ())
            ),
            merge_request=MergeRequestFacts(
                title=details.title,
                description=details.description or "",
                labels=tuple(details.labels),
                draft=bool(details.draft),
                source_branch=details.source_branch,
                target_branch=details.target_branch,
                squash=bool(getattr(details, "squash_on_merge", details.squash)),
            ),
            squash_policy=config.squash_policy,
        )
        report = Report(
            head_sha=event.head_sha,
            outcomes=evaluate(checks, context),
            config_source=config.source,
        )
        own_id = gl.user.id if gl.user else None
        own = next(
            (
                note
                for note in notes.result()
                if note.author["id"] == own_id and NOTE_MARKER in note.body
            ),
            None,
        )

    body = render_note(report)
    gl.projects.get(event.source_project_id, lazy=True).commits.get(
        event.head_sha, lazy=True
    ).statuses.create(
        {
            "state": status_state(report),
            "name": STATUS_NAME,
            "description": status_description(report),
            "target_url": event.web_url,
        }
    )
    if own is None:
        lazy_mr.notes.create({"body": body})
    elif own.body != body:
        own.body = body
        own.save()


# -- the fake GitLab in a child process ---------------------------------------------------


def _bench_app(fake: FakeGitLab, targets: list[MergeRequest]) -> ASGIApp:
    """The fake with `POST /_bench/event?i=N`: event N's commit, answered with its payload.

    Outside the fake's API, so no latency and no entry in its request log."""
    inner = with_control_routes(fake)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_bench/event":
            i = int(Request(scope).query_params["i"])
            target = targets[i % len(targets)]
            old = target.head_sha
            fake.commit(target.source_project_id, target.source_branch, message=f"fix: {i}")
            payload = hook_for(target, action="update", oldrev=old)
            await JSONResponse(payload)(scope, receive, send)
            return
        await inner(scope, receive, send)

    return app


async def _serve_fake(mrs: int, latency: float) -> None:
    from bench.server import _setup  # part b's MRs, built the same way

    fake = FakeGitLab()
    targets = _setup(fake, mrs)
    fake.latency = latency
    await serve(fake, host="127.0.0.1", port=0, announce={}, app=_bench_app(fake, targets))


@dataclass(frozen=True)
class FakeProcess:
    url: str
    token: str


@contextlib.asynccontextmanager
async def fake_gitlab_process(mrs: int, latency: float) -> AsyncIterator[FakeProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.baseline", "--serve-fake",
        "--mrs", str(mrs), "--latency", str(latency),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
        if not line:
            raise RuntimeError("the fake GitLab process exited before it listened")
        info = json.loads(line)
        yield FakeProcess(info["url"], info["token"])
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


# -- the measurement ----------------------------------------------------------------------


def _handled(url: str, token: str, payload: dict[str, Any]) -> str | None:
    """The old tool's failure mode: an event that raises is logged and dropped."""
    try:
        handle_event(url, token, payload)
    except Exception as exc:  # any failure drops the event, as it did
        return f"{type(exc).__name__}: {exc}"
    return None


def _drive(fake: FakeProcess, events: int) -> tuple[float, float, list[str]]:
    """Wall time until every event is handled, the old tool's CPU time meanwhile, and the
    errors. CPU time near the wall time means the client, not GitLab's latency, is the limit.

    The old tool's CPU: this process's (its rusage, all threads) less this thread's, which
    only asks the fake for each event's payload (the driver, not the tool)."""
    with httpx.Client(base_url=fake.url, timeout=30) as control:
        started, cpu_started = time.perf_counter(), time.process_time()
        driver_started = time.thread_time()
        with ThreadPoolExecutor(max_workers=OUTER_THREADS) as outer:
            futures = []
            for i in range(events):
                response = control.post("/_bench/event", params={"i": i})
                response.raise_for_status()
                futures.append(outer.submit(_handled, fake.url, fake.token, response.json()))
            driver = time.thread_time() - driver_started
            errors = [error for f in futures if (error := f.result()) is not None]
        cpu = time.process_time() - cpu_started - driver
        return time.perf_counter() - started, cpu, errors


async def measure(*, events: int = 500, mrs: int = 100, latency: float = 0.03) -> dict[str, Any]:
    async with fake_gitlab_process(mrs, latency) as fake:
        elapsed, cpu, errors = await asyncio.to_thread(_drive, fake, events)
        async with httpx.AsyncClient(base_url=fake.url, timeout=30) as control:
            response = await control.get("/_fake/requests")
            response.raise_for_status()
            log = response.json()
    # The fake's log keeps iids and shas in its endpoint names; group them away.
    endpoints: Counter[str] = Counter()
    for name, count in log["endpoints"].items():
        method, path = name.split(" ", 1)
        endpoints[endpoint(method, path)] += count
    return {
        "client": "python-gitlab, new client and thread pool per event, reads everything",
        "events": events,
        "mrs": mrs,
        "gitlab_latency_ms": round(latency * 1000),
        "outer_threads": OUTER_THREADS,
        "pool_threads": POOL_THREADS,
        "wall_seconds": round(elapsed, 3),
        "client_cpu_seconds": round(cpu, 3),
        "cpu_ms_per_event": round(cpu / events * 1e3, 2),
        "events_per_s": round(events / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:5],
        "gitlab_calls": log["total"],
        "calls_per_event": round(log["total"] / events, 2),
        "tcp_connections": log["connections"],
        "endpoints": dict(sorted(endpoints.items())),
    }


def compare(baseline: dict[str, Any], end_to_end: dict[str, Any]) -> dict[str, Any]:
    """Figure e: the baseline beside part b's figures from the same run."""
    ours_errors = int(end_to_end["not_final"]) + int(end_to_end["could_not_complete"])
    ours_rate = float(end_to_end["events_per_s"])
    ratio = ours_rate / baseline["events_per_s"] if baseline["events_per_s"] else 0.0
    ours_cpu = float(end_to_end["cpu_ms_per_event"])
    cpu_ratio = baseline["cpu_ms_per_event"] / ours_cpu if ours_cpu else 0.0
    return {
        "baseline": baseline,
        "ours": {
            "events_per_s": ours_rate,
            "cpu_ms_per_event": ours_cpu,
            "calls_per_event": end_to_end["calls_per_event"],
            "errors": ours_errors,
            "not_final": end_to_end["not_final"],
            "could_not_complete": end_to_end["could_not_complete"],
        },
        "ratio": round(ratio, 1),
        "cpu_ratio": round(cpu_ratio, 1),
        "meets_target": ratio >= MIN_RATIO and ours_errors == 0,
        "meets_cpu_target": cpu_ratio >= MIN_RATIO and ours_errors == 0,
    }


def table(result: dict[str, Any]) -> str:
    base, ours = result["baseline"], result["ours"]
    verdict = "met" if result["meets_target"] else "NOT met"
    line = (
        f"e. baseline (python-gitlab, new client and thread pool per event, reads everything): "
        f"{base['events_per_s']} events/s, {base['errors']} errors; "
        f"ours: {ours['events_per_s']} events/s, {ours['errors']} errors; "
        f"ratio {ours['events_per_s']}/{base['events_per_s']} = {result['ratio']} x "
        f"(target >= {MIN_RATIO:g} x with 0 errors for ours: {verdict})"
    )
    detail = (
        f"   same workload as b ({base['events']} events over {base['mrs']} MRs, "
        f"{base['gitlab_latency_ms']} ms per call, {base['outer_threads']} threads); baseline: "
        f"{base['gitlab_calls']} GitLab calls ({base['calls_per_event']} per event), "
        f"{base['tcp_connections']} TCP connections, {base['wall_seconds']} s "
        f"({base['client_cpu_seconds']} s of client CPU)"
    )
    cpu_verdict = "met" if result["meets_cpu_target"] else "NOT met"
    cpu = (
        f"   CPU per event (each side's own process, the fake GitLab in another): baseline "
        f"{base['cpu_ms_per_event']} ms, ours {ours['cpu_ms_per_event']} ms; "
        f"{result['cpu_ratio']} x less (target >= {MIN_RATIO:g} x: {cpu_verdict}); GitLab "
        f"calls per event: baseline {base['calls_per_event']}, ours {ours['calls_per_event']}"
    )
    lines = [line, cpu, detail]
    lines += [f"   baseline error: {error}" for error in base["first_errors"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--mrs", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per GitLab call")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(_serve_fake(args.mrs, args.latency))
        return
    result = asyncio.run(measure(events=args.events, mrs=args.mrs, latency=args.latency))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
