"""Branch pushed: driven by GitLab's published Push Hook payload over real HTTP."""

from __future__ import annotations

import re
from typing import Any

from bot.webhook import ZERO_SHA
from tests.conftest import Bot, delivery_calls
from tests.fake_gitlab import FakeGitLab
from tests.payloads import push_hook
from tests.scenarios import compliant_project

PUSH_HOOK = "Push Hook"


def _hook(
    fake: FakeGitLab, project_id: int, branch: str, before: str, after: str, **kw: Any
) -> dict[str, Any]:
    pushed = fake.compare_commits(project_id, before, after)  # oldest first
    listed = pushed[-20:]  # GitLab lists at most the newest 20
    return push_hook(
        project_id=project_id,
        branch=branch,
        before=before,
        after=after,
        commits=[{"id": c.sha, "message": c.message} for c in listed],
        total_commits_count=len(pushed),
        **kw,
    )


def _compliance(fake: FakeGitLab, project_id: int, sha: str) -> list[dict[str, Any]]:
    return [s for s in fake.statuses(project_id, sha) if s["name"] == "compliance"]


async def test_push_to_a_branch_without_mr_gets_a_status(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    before = fake.branch_head(project.id, "main")
    after = fake.commit(project.id, "main", message="fix: correct the widget")
    assert (
        await bot.send(PUSH_HOOK, _hook(fake, project.id, "main", before, after))
    ).status_code == 202
    await bot.settle()
    [status] = _compliance(fake, project.id, after)
    assert status["status"] == "success"


async def test_every_pushed_commit_is_checked_past_the_payloads_twenty(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    before = fake.branch_head(project.id, "main")
    fake.commit(project.id, "main", message="Oops, not conventional")  # the oldest of 25
    for i in range(24):
        after = fake.commit(project.id, "main", message=f"fix: step {i}")
    payload = _hook(fake, project.id, "main", before, after)
    assert len(payload["commits"]) == 20 and payload["total_commits_count"] == 25
    await bot.send(PUSH_HOOK, payload)
    await bot.settle()
    [status] = _compliance(fake, project.id, after)
    assert status["status"] == "failed"
    assert fake.calls("GET", "/repository/compare")


async def test_new_branch_is_compared_with_the_default_branch(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    main = fake.branch_head(project.id, "main")
    fake.commit(project.id, "topic", message="bad subject", parent=main)
    after = fake.commit(project.id, "topic", message="feat: good subject")
    payload = _hook(fake, project.id, "topic", main, after)
    payload["before"] = ZERO_SHA
    await bot.send(PUSH_HOOK, payload)
    await bot.settle()
    [status] = _compliance(fake, project.id, after)
    assert status["status"] == "failed"
    [compare] = fake.calls("GET", "/repository/compare")
    assert compare.query["from"] == "main" and compare.query["to"] == after


async def test_push_to_a_branch_with_an_open_mr_is_left_to_the_mr_check(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    main = fake.branch_head(project.id, "main")
    first = fake.commit(project.id, "feature", message="feat: one", parent=main)
    fake.open_mr(project.id, source_branch="feature", description="Feature.")
    after = fake.commit(project.id, "feature", message="feat: two")
    await bot.send(PUSH_HOOK, _hook(fake, project.id, "feature", first, after))
    await bot.settle()
    assert _compliance(fake, project.id, after) == []
    assert fake.calls("POST", "/statuses/") == []


async def test_tag_push_and_branch_deletion_are_acknowledged_and_ignored(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    main = fake.branch_head(project.id, "main")
    deletion = _hook(fake, project.id, "main", main, main)
    deletion["after"] = ZERO_SHA
    response = await bot.send(PUSH_HOOK, deletion)
    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    await bot.settle()
    assert delivery_calls(fake) == []


async def test_push_with_an_empty_default_branch_is_judged_by_the_default_branchs_rules(
    fake: FakeGitLab, bot: Bot
) -> None:
    # GitLab's push payload can carry `"default_branch": ""` (a project whose default branch is
    # not known to the hook, e.g. while the repository is being created). The pushed branch's
    # own config must not decide: here it switches the failing rule off.
    project = compliant_project(fake)
    main = fake.branch_head(project.id, "main")
    before = fake.commit(
        project.id,
        "topic",
        message="chore: switch the commit rule off",
        files={".gitlab/compliance.yml": "rules:\n  commit.conventional: {severity: 'off'}\n"},
        parent=main,
    )
    after = fake.commit(project.id, "topic", message="Not a conventional subject")
    payload = _hook(fake, project.id, "topic", before, after, default_branch="")
    assert payload["project"]["default_branch"] == ""
    assert (await bot.send(PUSH_HOOK, payload)).status_code == 202
    await bot.settle()
    [status] = _compliance(fake, project.id, after)
    assert status["status"] == "failed"
    # A verdict of the rules (commit.conventional's findings), not a failure to check.
    assert re.fullmatch(r"\d+ errors?, 0 warnings", str(status["description"]))
    assert fake.calls("GET", f"/projects/{project.id}")
