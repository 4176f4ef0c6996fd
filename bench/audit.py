"""The group audit against a fake GitLab that takes 30 ms per call, and a sequential
python-gitlab baseline on the same fake.

    python -m bench.audit --projects 1000 --latency 0.03 [--repeat 3] [--profile]

The fake runs in a child process (`tests.fake_gitlab_server`), so it takes no CPU time from
either client: the CPU time of this process during `run_audit` is the audit's alone (the
fake's own is read from its control route, to show it was not the bound). Its request log
gives the API calls each made. The audit runs `--repeat` times (the table gives the median
and the range: the machine is shared, so one run says little); `--profile` runs it once
more under cProfile and says where its CPU time goes, by layer. The baseline is a careful
sequential python-gitlab script, not a strawman: it lists the group's projects (so it needs
no call for description and topics), then for each one in turn reads its root tree, its
`.gitlab/` tree (as the bot's `source.Repository` does) and, when there is one, its config
file, through lazy objects that cost no extra call. It judges them with the bot's own rules,
so both runs must agree project by project.

The baseline is measured on the first `baseline_projects` projects and scaled to the whole
group (its time is linear in the projects: one listing page per 100, then the same calls for
each); the table says so. `--baseline-projects 1000` measures it all (about 80 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.audit import (
    DEFAULT_CONCURRENCY,
    AuditOptions,
    AuditResult,
    Status,
    outcome_of,
    repository_plan,
    run_audit,
)
from bot.config import CONFIG_PATHS, default_config, load
from bot.engine import evaluate
from bot.rules.base import Context, ProjectFacts, Scope
from bot.settings import GitLabSettings

MAX_CALLS_PER_PROJECT = 2
MIN_SPEEDUP = 40.0
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FakeProcess:
    url: str
    token: str
    group: str
    control: httpx.AsyncClient

    async def reset(self) -> None:
        (await self.control.post("/_fake/reset")).raise_for_status()

    async def log(self) -> dict[str, Any]:
        response = await self.control.get("/_fake/requests")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


@contextlib.asynccontextmanager
async def fake_gitlab_process(projects: int, latency: float) -> AsyncIterator[FakeProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_gitlab_server",
        "--projects", str(projects), "--latency", str(latency),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
        if not line:
            raise RuntimeError("the fake GitLab process exited before it listened")
        info = json.loads(line)
        async with httpx.AsyncClient(base_url=info["url"], timeout=30) as control:
            yield FakeProcess(info["url"], info["token"], info["group"], control)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


def _verdict(paths: set[str], project: Any, config_text: tuple[str, str] | None) -> str:
    config = load(config_text[1], config_text[0]) if config_text else default_config()
    branch = project.default_branch
    checks = repository_plan(config, branch)
    context = Context(
        scope=Scope.PUSH,
        branch=branch,
        target_branch=branch,
        paths=frozenset(paths),
        project=ProjectFacts(
            description=project.description or "", topics=tuple(project.topics or ())
        ),
    )
    findings = [f for outcome in evaluate(checks, context) for f in outcome.findings]
    return str(outcome_of(findings))


def baseline(url: str, token: str, group: str, *, limit: int) -> dict[str, str]:
    """One project after the other with python-gitlab; the verdict of each, by path."""
    import gitlab

    gl = gitlab.Gitlab(url, private_token=token)
    verdicts: dict[str, str] = {}
    listing = gl.groups.get(group, lazy=True).projects.list(
        iterator=True,
        include_subgroups=True,
        with_shared=False,
        archived=False,
        order_by="id",
        sort="asc",
        per_page=100,
    )
    for item in listing:
        if len(verdicts) >= limit:
            break
        if item.empty_repo or not item.default_branch:
            verdicts[item.path_with_namespace] = str(Status.ERROR)
            continue
        # Group projects have no repository methods; a lazy project object adds no call.
        project = gl.projects.get(item.id, lazy=True)
        branch = item.default_branch
        items = list(project.repository_tree(ref=branch, get_all=True))
        try:
            items += project.repository_tree(
                path=".gitlab", ref=branch, recursive=True, get_all=True
            )
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
        paths = {str(i["path"]) for i in items if i["type"] == "blob"}
        config = next(
            (
                (name, project.files.raw(file_path=name, ref=branch).decode())
                for name in CONFIG_PATHS
                if name in paths
            ),
            None,
        )
        verdicts[item.path_with_namespace] = _verdict(paths, item, config)
    return verdicts


# Where CPU time goes, by the file a function is in (the first match counts).
LAYERS = (
    ("connection pool (bot/http_pool.py)", ("bot/http_pool.py",)),
    ("GitLab API wrapper (bot/gitlab.py)", ("bot/gitlab.py",)),
    (
        "HTTP client (httpx, httpcore, h11, anyio)",
        ("/httpx/", "/httpcore/", "/h11/", "/anyio/", "/sniffio/", "/idna/", "/certifi/"),
    ),
    ("JSON decoding", ("/json/", "_json")),
    (
        "rules, engine and config",
        ("bot/rules/", "bot/engine.py", "bot/config.py", "bot/model.py", "/pathspec/", "/re2"),
    ),
    ("audit (bot/audit.py)", ("bot/audit.py",)),
    ("event loop and sockets (asyncio)", ("/asyncio/", "selectors.py", "socket.py", "ssl.py")),
    ("imports (once per run)", ("<frozen", "importlib")),
)


def layer_of(filename: str) -> str:
    for name, markers in LAYERS:
        if any(marker in filename for marker in markers):
            return name
    return "other"


def profile_layers(profile: cProfile.Profile, projects: int) -> list[dict[str, Any]]:
    """Own time (tottime) of every function, summed by layer: milliseconds per project."""
    stats = pstats.Stats(profile)
    totals: dict[str, float] = {}
    for (filename, _, _), row in stats.stats.items():  # type: ignore[attr-defined]
        if filename != "~":
            totals[layer_of(filename)] = totals.get(layer_of(filename), 0.0) + row[2]
            continue
        # A built-in (a socket send, a dict method) counts for whoever called it, in the
        # proportion of its time each caller spent in it.
        for (caller, _, _), called in row[4].items():
            layer = layer_of(caller) if caller != "~" else "other"
            totals[layer] = totals.get(layer, 0.0) + called[2]
    whole = sum(totals.values()) or 1.0
    return [
        {
            "layer": name,
            "share": round(seconds / whole, 3),
            "ms_per_project": round(1000 * seconds / max(1, projects), 3),
        }
        for name, seconds in sorted(totals.items(), key=lambda item: -item[1])
    ]


async def _one_audit(
    fake: FakeProcess, concurrency: int, profile: cProfile.Profile | None = None
) -> tuple[AuditResult, dict[str, Any]]:
    await fake.reset()
    settings = GitLabSettings(gitlab_url=fake.url, gitlab_token=fake.token)  # type: ignore[arg-type]
    options = AuditOptions(group=fake.group, concurrency=concurrency)
    started, cpu_started = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    try:
        result = await run_audit(settings, options)
    finally:
        if profile is not None:
            profile.disable()
    wall = time.perf_counter() - started
    # This process's CPU time: when it nears the wall time, the client is CPU-bound.
    cpu = time.process_time() - cpu_started
    log = await fake.log()
    return result, {"wall": wall, "cpu": cpu, "log": log}


async def measure(
    projects: int = 1000,
    latency: float = 0.03,
    *,
    baseline_projects: int = 100,
    concurrency: int = DEFAULT_CONCURRENCY,
    repeat: int = 1,
    profile: bool = False,
) -> dict[str, Any]:
    async with fake_gitlab_process(projects, latency) as fake:
        runs = []
        for _ in range(max(1, repeat)):
            result, run = await _one_audit(fake, concurrency)
            runs.append(run)
        layers = None
        if profile:
            profiler = cProfile.Profile()
            await _one_audit(fake, concurrency, profiler)
            layers = profile_layers(profiler, len(result.projects))
        ours_seconds = statistics.median(r["wall"] for r in runs)
        ours_cpu = statistics.median(r["cpu"] for r in runs)
        ours_log = runs[-1]["log"]

        await fake.reset()
        started = time.perf_counter()
        # Synchronous on purpose: this is the baseline. Nothing else needs the loop meanwhile.
        base_verdicts = baseline(fake.url, fake.token, fake.group, limit=baseline_projects)
        base_seconds = time.perf_counter() - started
        base_log = await fake.log()

    audited = len(result.projects)
    per_project = max(1, audited)
    checked = len(base_verdicts)
    ours_by_path = {row.name: str(row.status) for row in result.projects}
    scaled = base_seconds * audited / checked if checked else 0.0
    ours_calls_per_project = ours_log["total"] / audited if audited else 0.0
    speedup = scaled / ours_seconds if ours_seconds else 0.0
    return {
        "projects": audited,
        "latency_ms": round(latency * 1000),
        "concurrency": concurrency,
        "audit": {
            "runs": len(runs),
            "wall_seconds": round(ours_seconds, 3),
            "wall_seconds_each": [round(r["wall"], 3) for r in runs],
            "client_cpu_seconds": round(ours_cpu, 3),
            "client_cpu_seconds_each": [round(r["cpu"], 3) for r in runs],
            "cpu_ms_per_project": round(1000 * ours_cpu / per_project, 3),
            "fake_cpu_seconds": ours_log.get("cpu_seconds"),
            "profile": layers,
            "api_calls": ours_log["total"],
            "connections": ours_log["connections"],
            "calls_per_project": round(ours_calls_per_project, 3),
            "endpoints": ours_log["endpoints"],
            "statuses": {s.value: sum(1 for r in result.projects if r.status is s) for s in Status},
            "exit_code": result.exit_code(),
        },
        "baseline": {
            "client": "python-gitlab, sequential",
            "projects_measured": checked,
            "wall_seconds_measured": round(base_seconds, 3),
            "wall_seconds_scaled": round(scaled, 3),
            "api_calls": base_log["total"],
            "calls_per_project": round(base_log["total"] / checked, 3) if checked else 0.0,
            "endpoints": base_log["endpoints"],
        },
        "speedup": round(speedup, 1),
        "verdicts_agree": all(ours_by_path.get(path) == v for path, v in base_verdicts.items()),
        "meets_targets": ours_calls_per_project <= MAX_CALLS_PER_PROJECT and speedup >= MIN_SPEEDUP,
    }


def table(result: dict[str, Any]) -> str:
    ours, base = result["audit"], result["baseline"]
    scaled = base["projects_measured"] != result["projects"]
    factor = result["projects"] / max(1, base["projects_measured"])
    note = (
        f"measured on {base['projects_measured']} projects "
        f"({base['wall_seconds_measured']:.2f} s) and scaled x{factor:g}"
    )
    rows = [
        ("compliance-bot audit", f"{ours['wall_seconds']:.2f} s", ours),
        ("python-gitlab, sequential", f"{base['wall_seconds_scaled']:.2f} s" + "*" * scaled, base),
    ]
    lines = [
        f"Group audit: {result['projects']} projects, fake GitLab with "
        f"{result['latency_ms']} ms per call, --concurrency {result['concurrency']}",
        "",
        f"{'':<27}{'wall time':>12}{'API calls':>11}{'calls/project':>15}",
        *(
            f"{name:<27}{wall:>12}{run['api_calls']:>11}{run['calls_per_project']:>15.2f}"
            for name, wall, run in rows
        ),
        "",
        f"speed-up: {result['speedup']:.1f}x (target >= {MIN_SPEEDUP:g}x); "
        f"calls/project: {ours['calls_per_project']:.2f} (target <= {MAX_CALLS_PER_PROJECT})",
        f"audit client: {ours['client_cpu_seconds']:.2f} s of CPU in {ours['wall_seconds']:.2f} s "
        f"(median of {ours['runs']}; wall {_spread(ours['wall_seconds_each'])}, CPU "
        f"{_spread(ours['client_cpu_seconds_each'])}), {ours['connections']} TCP connections",
        f"CPU per project: {ours['cpu_ms_per_project']:.2f} ms; the fake GitLab, in its own "
        f"process, used {ours['fake_cpu_seconds']} s",
        f"verdicts agree with the baseline: {'yes' if result['verdicts_agree'] else 'NO'}; "
        f"statuses: {ours['statuses']}",
    ]
    if scaled:
        lines.append(f"* baseline {note}")
    if ours.get("profile"):
        lines += ["", "Where the audit's CPU goes (own time by layer, one run under cProfile):"]
        lines += [
            f"  {layer['share']:>6.1%}  {layer['ms_per_project']:>6.2f} ms/project  "
            f"{layer['layer']}"
            for layer in ours["profile"]
        ]
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} s" if len(values) > 1 else f"{values[0]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per GitLab call")
    parser.add_argument("--baseline-projects", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--repeat", type=int, default=3, help="audit runs; the median counts")
    parser.add_argument(
        "--profile", action="store_true", help="one more run under cProfile: CPU by layer"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            args.projects,
            args.latency,
            baseline_projects=args.baseline_projects,
            concurrency=args.concurrency,
            repeat=args.repeat,
            profile=args.profile,
        )
    )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
