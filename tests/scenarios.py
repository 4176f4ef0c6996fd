"""Ready-made GitLab states for the integration tests, built in the fake GitLab."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, MergeRequest, Project
from tests.payloads import merge_request_hook, push_hook

# A repository that passes every repository rule.
HYGIENE_FILES: dict[str, str | None] = {
    "README.md": "# Widget\n",
    "LICENSE": "MIT License\n",
    "CONTRIBUTING.md": "Send merge requests.\n",
    "CHANGELOG.md": "## 1.0.0\n",
    ".gitlab/issue_templates/Bug.md": "## Steps\n",
    ".gitlab/merge_request_templates/Default.md": "## What\n",
    "src/widget.py": "print('widget')\n",
}


def compliant_project(fake: FakeGitLab, path: str = "acme/widget") -> Project:
    project = fake.add_project(
        path_with_namespace=path, description="A widget", topics=["python", "tools"]
    )
    fake.commit(project.id, "main", message="chore: initial commit", files=HYGIENE_FILES)
    return project


def project_with_rules(fake: FakeGitLab, config: str, *, message: str = "chore: rules") -> Project:
    """A compliant project whose target branch `main` also holds `config` as its
    `.gitlab/compliance.yml` (committed with `message`)."""
    project = compliant_project(fake)
    fake.commit(project.id, "main", message=message, files={".gitlab/compliance.yml": config})
    return project


async def judged_mr(
    fake: FakeGitLab,
    bot: Bot,
    project: Project,
    *,
    message: str,
    files: dict[str, str | None] | None = None,
    **mr: Any,
) -> MergeRequest:
    """Commit `files` on `feature` with `message`, open an MR of it (`mr`: title,
    description, ... as `FakeGitLab.open_mr` takes them), deliver GitLab's open hook to `bot`
    and wait until the bot has settled it."""
    fake.commit(project.id, "feature", message=message, files=files)
    return await open_judged_mr(fake, bot, project, **mr)


async def open_judged_mr(fake: FakeGitLab, bot: Bot, project: Project, **mr: Any) -> MergeRequest:
    """Open an MR of the branch `feature` as it stands (`mr`: title, description, ... as
    `FakeGitLab.open_mr` takes them), deliver GitLab's open hook to `bot` and wait until the
    bot has settled it."""
    opened = fake.open_mr(project.id, source_branch="feature", **mr)
    await bot.send("Merge Request Hook", hook_for(opened))
    await bot.settle()
    return opened


def hook_for(mr: MergeRequest, **overrides: Any) -> dict[str, Any]:
    """GitLab's published MR payload, carrying this MR's current state from the fake."""
    values: dict[str, Any] = {
        "project_id": mr.project_id,
        "source_project_id": mr.source_project_id,
        "iid": mr.iid,
        "head_sha": mr.head_sha,
        "title": mr.title,
        "description": mr.description,
        "source_branch": mr.source_branch,
        "target_branch": mr.target_branch,
        "web_url": mr.web_url,
        "labels": list(mr.labels),
        "draft": mr.draft,
    }
    values.update(overrides)
    return merge_request_hook(**values)


def push_one_commit(
    fake: FakeGitLab,
    project_id: int,
    branch: str,
    message: str,
    files: dict[str, str | None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Commit `files` on `branch` in the fake, as a user pushing one commit would:
    (the new head, the Push Hook GitLab sends for that push, listing that one commit)."""
    before = fake.branch_head(project_id, branch)
    after = fake.commit(project_id, branch, message=message, files=files)
    commits = [{"id": after, "message": message}]
    hook = push_hook(
        project_id=project_id, branch=branch, before=before, after=after, commits=commits
    )
    return after, hook


# Each MR with the final status its newest head must end with.
Expectation = list[tuple[MergeRequest, str]]


def settled(fake: FakeGitLab, expected: Expectation) -> bool:
    """Every MR's newest head carries its expected final status, and not an error."""
    for mr, state in expected:
        statuses = fake.statuses(mr.source_project_id, mr.head_sha)
        if not statuses or statuses[-1]["status"] != state:
            return False
        if str(statuses[-1]["description"]).startswith("could not complete"):
            return False
    return True


async def wait_until(predicate: Callable[[], bool], seconds: float = 120) -> None:
    """Wait for an event that the test observes by polling, bounded by `seconds` (a bound
    on a failure, not a pause: it returns as soon as `predicate` holds)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the awaited state never came"
        await asyncio.sleep(0.05)


async def wait_until_settled(fake: FakeGitLab, expected: Expectation, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not settled(fake, expected):
        assert time.monotonic() < deadline, [
            (mr.iid, mr.head_sha[:8], state, fake.statuses(mr.source_project_id, mr.head_sha))
            for mr, state in expected
            if not settled(fake, [(mr, state)])
        ][:3]
        await asyncio.sleep(0.2)
    # Quiet for a moment: nothing is still being written.
    quiet_from = len(fake.requests)
    await asyncio.sleep(1.0)
    writes = [r for r in fake.requests[quiet_from:] if r.method in ("POST", "PUT")]
    if writes:
        await wait_until_settled(fake, expected, deadline - time.monotonic())
