"""GitLab calls per event type, read from the fake GitLab's request log."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bot.metrics import endpoint_template
from tests.conftest import running_bot
from tests.fake_gitlab import FakeGitLab
from tests.scenarios import compliant_project, hook_for, push_one_commit


def endpoint(method: str, path: str) -> str:
    return f"{method} {endpoint_template(path)}"


async def measure() -> dict[str, dict[str, Any]]:
    fake = FakeGitLab()
    results: dict[str, dict[str, Any]] = {}
    async with fake.serve(), running_bot(fake) as bot:

        async def record(name: str, event: str, payload: dict[str, Any]) -> None:
            start = len(fake.requests)
            response = await bot.send(event, payload)
            assert response.status_code == 202, response.text
            await bot.settle()
            made = fake.requests[start:]
            counts = Counter(endpoint(r.method, r.path) for r in made)
            results[name] = {"total": len(made), "endpoints": dict(sorted(counts.items()))}

        project = compliant_project(fake)
        fake.commit(project.id, "feature", message="feat: first")
        mr = fake.open_mr(project.id, source_branch="feature", description="Feature.")
        await record("mr open (cold)", "Merge Request Hook", hook_for(mr))

        for name, message, content in (
            ("mr update, 1 new commit", "fix: second", "2\n"),
            ("mr update, 1 commit changing a file of the MR again", "fix: review", "3\n"),
        ):
            old = mr.head_sha
            fake.commit(project.id, "feature", message=message, files={"b.py": content})
            await record(name, "Merge Request Hook", hook_for(mr, action="update", oldrev=old))

        labelled = hook_for(
            mr,
            action="update",
            labels=["backend"],
            changes={"labels": {"previous": [], "current": [{"title": "backend"}]}},
        )
        await record("mr update, labels only", "Merge Request Hook", labelled)

        fake.commit(project.id, "other", message="feat: other", files={"o.py": "o\n"})
        other = fake.open_mr(project.id, source_branch="other", description="Other.")
        await record("another mr open, same target commit", "Merge Request Hook", hook_for(other))

        _, push = push_one_commit(fake, project.id, "main", "docs: update readme")
        await record("push, branch without MR", "Push Hook", push)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["GitLab calls per event (fake GitLab request log)", ""]
    for name, result in results.items():
        lines.append(f"{name}: {result['total']} calls")
        lines += [f"    {count:>3}  {ep}" for ep, count in result["endpoints"].items()]
    return "\n".join(lines)
