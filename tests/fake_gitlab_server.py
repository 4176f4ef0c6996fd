"""The fake GitLab in a process of its own.

For clients that cannot share a test's event loop (python-gitlab is synchronous) and for
benchmarks, where the fake must not take CPU time from the client being measured:

    python -m tests.fake_gitlab_server --projects 1000 --latency 0.03

It builds the `audit_group` scenario, listens on a free loopback port, prints one JSON line
(`{"url": ..., "token": ..., "group": ...}`) once it accepts connections, and serves until
SIGTERM or SIGINT. Beside GitLab's API, two control routes outside `/api/v4`:

    GET  /_fake/requests   {"total": N, "connections": TCP connections seen,
                            "endpoints": {"GET /projects/:id/repository/tree": n, ...},
                            "cpu_seconds": this process's CPU time since the reset}
    POST /_fake/reset      clears the request log
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.metrics import endpoint_template
from tests.fake_gitlab import FakeGitLab, Project

AUDIT_GROUP = "bench"


def endpoint(method: str, path: str) -> str:
    """`GET /projects/:id/repository/tree` for any project: requests grouped by endpoint."""
    return f"{method} {endpoint_template(path)}"


# A config some projects keep on their default branch: an extra read per such project.
PROJECT_CONFIG = "version: 1\nrules:\n  repository.topics: {severity: error}\n"


def audit_group(fake: FakeGitLab, projects: int, *, group: str = AUDIT_GROUP) -> list[Project]:
    """A group of `projects` active projects in nested subgroups, with a deterministic mix of
    what the repository rules look at, plus archived projects the audit must skip."""
    fake.add_group(group)
    made = []
    for i in range(projects):
        if i % 25 == 0:
            namespace = group
        elif i % 10 == 9:
            namespace = f"{group}/team-{i % 5}/inner"
        else:
            namespace = f"{group}/team-{i % 5}"
        fake.add_group(namespace)
        project = fake.add_project(
            path_with_namespace=f"{namespace}/p{i:04d}",
            description="" if i % 6 == 0 else f"Project {i}",
            topics=["python"] if i % 2 == 0 else [],
        )
        files: dict[str, str | None] = {"src/main.py": f"print({i})\n"}
        if i % 7:
            files["README.md"] = f"# p{i}\n"
        if i % 5:
            files["LICENSE"] = "MIT License\n"
        if i % 2 == 0:
            files["CONTRIBUTING.md"] = "Send merge requests.\n"
        if i % 3 == 0:
            files["CHANGELOG.md"] = "## 1.0.0\n"
            files[".gitlab/issue_templates/Bug.md"] = "## Steps\n"
        if i % 4 == 0:
            files[".gitlab/merge_request_templates/Default.md"] = "## What\n"
        if i % 10 == 0:
            files[".gitlab/compliance.yml"] = PROJECT_CONFIG
        fake.commit(project.id, "main", message="chore: initial commit", files=files)
        made.append(project)
    for i in range(max(1, projects // 50)):
        archived = fake.add_project(path_with_namespace=f"{group}/old-{i:03d}", archived=True)
        fake.commit(archived.id, "main", message="chore: last commit", files={"x": "1\n"})
    return made


def with_control_routes(fake: FakeGitLab) -> ASGIApp:
    # The fake's own CPU time, so a benchmark can tell whether the fake was what bound it.
    cpu_at_reset = [time.process_time()]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/_fake/"):
            await fake.app(scope, receive, send)
            return
        if path == "/_fake/requests":
            counts = Counter(endpoint(r.method, r.path) for r in fake.requests)
            response = JSONResponse(
                {
                    "total": len(fake.requests),
                    "connections": fake.connections(),
                    "endpoints": dict(sorted(counts.items())),
                    "cpu_seconds": round(time.process_time() - cpu_at_reset[0], 3),
                }
            )
        elif path == "/_fake/reset" and scope["method"] == "POST":
            fake.requests.clear()
            cpu_at_reset[0] = time.process_time()
            response = JSONResponse({"total": 0})
        else:
            response = JSONResponse({"error": "404 Not Found"}, status_code=404)
        await response(scope, receive, send)

    return app


async def serve(
    fake: FakeGitLab,
    *,
    host: str,
    port: int,
    announce: dict[str, Any],
    app: ASGIApp | None = None,
) -> None:
    """Serve the fake (or `app`, which wraps it) until SIGTERM; print its URL as JSON."""
    config = uvicorn.Config(
        app or with_control_routes(fake),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    fake.base_url = f"http://{host}:{bound}"
    print(json.dumps({"url": fake.base_url, "token": fake.token, **announce}), flush=True)
    # uvicorn handles SIGTERM and SIGINT: it stops serving and this returns.
    await task


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_gitlab_server")
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fake = FakeGitLab()
    audit_group(fake, args.projects)
    fake.latency = args.latency
    announce = {"group": AUDIT_GROUP, "projects": args.projects}
    asyncio.run(serve(fake, host=args.host, port=args.port, announce=announce))


if __name__ == "__main__":
    main()
