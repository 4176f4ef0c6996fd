"""GitLab as unkind as its source: CI jobs named like the status, edited comments, retried
awards, MRs without a head yet, pushes that fire no hook, retargeted MRs (issue 15, 1).

Each behaviour is modelled in the fake GitLab (tests/fake_gitlab.py, citing gitlabhq's file
it follows); the fake's own test proves the model over HTTP, and the bot's test drives the
bot as GitLab does and asserts on what GitLab ends up holding.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.settings import Settings
from tests.conftest import Bot, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.payloads import note_hook, push_hook
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"
NOTE_HOOK = "Note Hook"
STATUS_NAME = Settings.model_fields["compliance_status_name"].default
RELAXED = "version: 1\nrules:\n  merge_request.description: {severity: 'off'}\n"


async def eventually(condition: Callable[[], bool], what: Any, seconds: float = 30.0) -> None:
    """Wait for something GitLab ends up holding; fail with `what` (called) after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what() if callable(what) else what
        await asyncio.sleep(0.05)


def bot_statuses(fake: FakeGitLab, project_id: int, sha: str) -> list[dict[str, Any]]:
    """The external statuses the bot posted on `sha`, oldest first."""
    return [
        s
        for s in fake.statuses(project_id, sha)
        if s["author"]["username"] == fake.bot_user["username"]
    ]


def last_bot_state(fake: FakeGitLab, project_id: int, sha: str) -> str | None:
    statuses = bot_statuses(fake, project_id, sha)
    return str(statuses[-1]["status"]) if statuses else None


def _one_commit_mr(
    fake: FakeGitLab,
    project_id: int,
    branch: str = "feature",
    *,
    message: str = "feat: x",
    description: str = "x",
) -> MergeRequest:
    """Commit once on `branch` and open an MR of it into the default branch, as a user does."""
    fake.commit(project_id, branch, message=message)
    return fake.open_mr(project_id, source_branch=branch, description=description)


# -- the fake follows GitLab -----------------------------------------------------------------


@pytest.fixture
def api(fake: FakeGitLab) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{fake.base_url}/api/v4", headers={"PRIVATE-TOKEN": fake.token}
    )


async def test_fake_refuses_a_status_named_like_a_ci_job_and_lists_jobs_too(
    fake: FakeGitLab, api: httpx.AsyncClient
) -> None:
    project = compliant_project(fake)
    sha = fake.commit(project.id, "feature", message="feat: x")
    pipeline = fake.add_pipeline(project.id, sha, "refs/merge-requests/1/head")
    job = fake.add_job(pipeline, "lint", allow_failure=True)
    async with api:
        taken = await api.post(
            f"/projects/{project.id}/statuses/{sha}", json={"state": "running", "name": "lint"}
        )
        assert taken.status_code == 400
        assert taken.json() == {"message": {"name": ["has already been taken"]}}
        posted = await api.post(
            f"/projects/{project.id}/statuses/{sha}", json={"state": "success", "name": "other"}
        )
        assert posted.status_code == 201 and posted.json()["pipeline_id"] == pipeline
        statuses = f"/projects/{project.id}/repository/commits/{sha}/statuses"
        listed = (await api.get(statuses)).json()
        external = (await api.get(statuses, params={"stage": "external"})).json()
    # The listing holds the CI job, in the entity's shape (no type, no stage)...
    assert [s["name"] for s in listed] == ["lint", "other"]
    assert listed[0] == job and "type" not in job and "stage" not in job
    assert job["allow_failure"] is True and job["author"]["username"] == "ada"
    # ...and the `external` stage only the external statuses.
    assert [s["name"] for s in external] == ["other"]
    assert external[0]["author"]["username"] == fake.bot_user["username"]


async def test_fake_sends_no_push_hook_for_more_than_three_branches(
    fake: FakeGitLab, api: httpx.AsyncClient
) -> None:
    project = compliant_project(fake)
    three, unhooked = fake.push(project.id, {f"a{i}": {"message": f"feat: {i}"} for i in range(3)})
    assert unhooked == frozenset() and fake.pushes_without_hooks == []
    # Created and updated branches are counted apart, as GitLab groups them.
    _, unhooked = fake.push(
        project.id, {**{b: {"message": "fix: more"} for b in three}, "b0": {"message": "feat"}}
    )
    assert unhooked == frozenset()
    heads, unhooked = fake.push(project.id, {f"c{i}": {"message": f"feat: {i}"} for i in range(4)})
    assert unhooked == frozenset(heads)
    assert fake.pushes_without_hooks == [{"project_id": project.id, "heads": heads}]
    async with api:
        newest = await api.get(
            f"/projects/{project.id}/repository/branches",
            params={"sort": "updated_desc", "per_page": 5},
        )
        by_name = await api.get(f"/projects/{project.id}/repository/branches")
    assert [b["name"] for b in newest.json()] == ["c3", "c2", "c1", "c0", "b0"]
    assert newest.json()[0]["commit"]["id"] == heads["c3"]
    assert [b["name"] for b in by_name.json()][:3] == ["a0", "a1", "a2"]
    assert [b["default"] for b in by_name.json() if b["name"] == "main"] == [True]


async def test_fake_answers_a_null_sha_while_the_mr_is_prepared(
    fake: FakeGitLab, api: httpx.AsyncClient
) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id)
    mr.preparing = True
    async with api:
        single = (await api.get(f"/projects/{project.id}/merge_requests/{mr.iid}")).json()
        listed = (await api.get(f"/projects/{project.id}/merge_requests")).json()
    assert single["sha"] is None and single["diff_refs"] is None
    assert listed[0]["sha"] is None


# -- 2.1: a commit status named like a CI job --------------------------------------------------


async def test_a_ci_job_named_like_the_status_does_not_keep_the_verdict_off_the_mr(
    fake: FakeGitLab,
) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id)
    # The MR pipeline runs a job named like the bot's status (the old CI template did).
    pipeline = fake.add_pipeline(
        project.id, mr.head_sha, f"refs/merge-requests/{mr.iid}/head", source="merge_request_event"
    )
    fake.add_job(pipeline, STATUS_NAME)
    # A check slow enough to show `running` first: both posts must land on one status.
    fake.latency = 0.02
    async with running_bot(fake, running_status_delay_seconds=0) as bot:
        assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
        await bot.settle()
    [status] = bot_statuses(fake, project.id, mr.head_sha)
    assert status["status"] == "success"
    assert status["name"] == f"{STATUS_NAME} (bot)"
    assert status["pipeline_id"] == pipeline  # in the MR's pipeline, no external one
    assert [p["id"] for p in fake.pipelines(project.id, mr.head_sha)] == [pipeline]


async def test_catch_up_does_not_take_a_ci_job_for_the_bots_status(fake: FakeGitLab) -> None:
    project = compliant_project(fake)
    seen = _one_commit_mr(fake, project.id, "seen", message="feat: seen", description="Seen.")
    async with running_bot(fake, catchup_interval_seconds=0.2) as bot:
        assert (await bot.send(MR_HOOK, hook_for(seen))).status_code == 202
        await bot.settle()
        # An MR whose hook never came, whose pipeline already ran a `compliance` job.
        missed = _one_commit_mr(
            fake, project.id, "missed", message="feat: missed", description="Missed."
        )
        pipeline = fake.add_pipeline(project.id, missed.head_sha, "missed", source="push")
        fake.add_job(pipeline, STATUS_NAME, status="success")
        await eventually(
            lambda: last_bot_state(fake, project.id, missed.head_sha) == "success",
            lambda: fake.statuses(project.id, missed.head_sha),
        )


# -- 2.5: commands -----------------------------------------------------------------------------


async def test_an_edited_recheck_comment_does_nothing(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id)
    note = fake.add_note(project.id, mr.iid, "Looks fine", author_username="grace")
    edited = fake.edit_note(project.id, mr.iid, note["id"], "/compliance recheck")
    response = await bot.send(NOTE_HOOK, note_hook(mr, edited, action="update"))
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    await bot.settle()
    assert fake.award_emoji == []
    assert fake.statuses(project.id, mr.head_sha) == []
    assert [n["id"] for n in fake.notes(project.id, mr.iid)] == [note["id"]]

    # GitLab before `action` existed sent Note Hooks for new comments only: still a command.
    response = await bot.send(NOTE_HOOK, note_hook(mr, edited, action=None))
    assert response.json()["status"] == "accepted"
    await bot.settle()
    assert last_bot_state(fake, project.id, mr.head_sha) == "success"


async def test_a_recheck_retried_after_its_award_still_rechecks(fake: FakeGitLab) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id)
    async with running_bot(
        fake, catchup_interval_seconds=0.2, retry_failed_after_seconds=0.1
    ) as bot:
        await bot.send(MR_HOOK, hook_for(mr))
        await bot.settle()
        assert last_bot_state(fake, project.id, mr.head_sha) == "success"
        # The target branch's rules tighten; a recheck is how they are applied at once.
        fake.commit(
            project.id,
            "main",
            message="chore: rules",
            files={
                ".gitlab/compliance.yml": "rules:\n  merge_request.labels:\n"
                "    severity: error\n    any_of: [bug]\n"
            },
        )
        # The first run reacts to the comment, then GitLab fails the MR read: the job fails
        # and runs again, when the reaction is already there.
        fake.fail("GET", rf"/merge_requests/{mr.iid}$", 403, times=1)
        comment = fake.add_note(project.id, mr.iid, "/compliance recheck", author_username="ada")
        assert (await bot.send(NOTE_HOOK, note_hook(mr, comment))).status_code == 202
        await eventually(
            lambda: last_bot_state(fake, project.id, mr.head_sha) == "failed",
            lambda: (fake.statuses(project.id, mr.head_sha), fake.award_emoji),
        )
    assert [a["awardable_id"] for a in fake.award_emoji] == [comment["id"]]
    assert any(r.status == 404 for r in fake.calls("POST", "/award_emoji"))


# -- 2.10, 2.7: null heads and quiet pushes ----------------------------------------------------


async def test_a_recheck_of_an_mr_without_a_head_yet_is_not_an_error(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id)
    mr.preparing = True
    comment = fake.add_note(project.id, mr.iid, "/compliance recheck", author_username="ada")
    assert (await bot.send(NOTE_HOOK, note_hook(mr, comment))).status_code == 202
    await bot.settle()
    counts = await bot.app.state.runtime.store.counts()
    assert counts.get("failed", 0) == 0, counts
    assert counts.get("done") == 1, counts
    assert [a["awardable_id"] for a in fake.award_emoji] == [comment["id"]]
    assert fake.statuses(project.id, mr.head_sha) == []


async def test_catch_up_goes_past_an_mr_without_a_head(fake: FakeGitLab) -> None:
    project = compliant_project(fake)
    seen = _one_commit_mr(fake, project.id, "seen", message="feat: seen", description="Seen.")
    async with running_bot(fake, catchup_interval_seconds=0.2) as bot:
        await bot.send(MR_HOOK, hook_for(seen))
        await bot.settle()
        missed = _one_commit_mr(
            fake, project.id, "missed", message="feat: missed", description="Missed."
        )
        # Newer, so GitLab lists it first: GitLab is still preparing it.
        fresh = _one_commit_mr(
            fake, project.id, "fresh", message="feat: fresh", description="Fresh."
        )
        fresh.preparing = True
        await eventually(
            lambda: last_bot_state(fake, project.id, missed.head_sha) == "success",
            lambda: fake.statuses(project.id, missed.head_sha),
        )
        assert fake.statuses(project.id, fresh.head_sha) == []
        fresh.preparing = False  # GitLab is done: the next catch-up checks it
        await eventually(
            lambda: last_bot_state(fake, project.id, fresh.head_sha) == "success",
            lambda: fake.statuses(project.id, fresh.head_sha),
        )


async def test_catch_up_checks_branches_whose_push_sent_no_hook(fake: FakeGitLab) -> None:
    project = compliant_project(fake)
    async with running_bot(fake, catchup_interval_seconds=0.2) as bot:
        first = fake.commit(project.id, "first", message="feat: first")
        payload = push_hook(
            project_id=project.id,
            branch="first",
            before="0" * 40,
            after=first,
            commits=[{"id": first, "message": "feat: first"}],
        )
        assert (await bot.send("Push Hook", payload)).status_code == 202
        await bot.settle()
        assert last_bot_state(fake, project.id, first) == "success"
        # `git push --all` of four new branches: GitLab sends no push hook for any.
        heads, unhooked = fake.push(
            project.id,
            {
                "one": {"message": "feat: one"},
                "two": {"message": "fix: two"},
                "three": {"message": "docs: three"},
                "four": {"message": "Not conventional"},
            },
        )
        assert unhooked == frozenset(heads)
        expected = {"one": "success", "two": "success", "three": "success", "four": "failed"}
        await eventually(
            lambda: all(
                last_bot_state(fake, project.id, heads[b]) == state for b, state in expected.items()
            ),
            lambda: {b: fake.statuses(project.id, heads[b]) for b in heads},
        )
    # The branch the bot had already checked is not checked again.
    assert len(bot_statuses(fake, project.id, first)) == 1


async def test_catch_up_leaves_a_quietly_pushed_mr_branch_to_the_mr_check(
    fake: FakeGitLab,
) -> None:
    project = compliant_project(fake)
    mr = _one_commit_mr(fake, project.id, "topic", message="feat: topic", description="Topic.")
    async with running_bot(fake, catchup_interval_seconds=0.2) as bot:
        await bot.send(MR_HOOK, hook_for(mr))
        await bot.settle()
        heads, _ = fake.push(
            project.id,
            {"topic": {"message": "fix: more"}, **{f"b{i}": {"message": "feat"} for i in range(4)}},
        )
        await eventually(
            lambda: (
                last_bot_state(fake, project.id, mr.head_sha) == "success"
                and all(last_bot_state(fake, project.id, heads[f"b{i}"]) for i in range(4))
            ),
            lambda: fake.statuses(project.id, mr.head_sha),
        )
        await bot.settle()
    # One verdict on the MR head, by the MR check (it wrote the note): no push check on it.
    assert len(bot_statuses(fake, project.id, mr.head_sha)) == 1
    [note] = [n for n in fake.notes(project.id, mr.iid)]
    assert f"`{mr.head_sha[:8]}`" in str(note["body"])


# -- 2.7: retargeting ------------------------------------------------------------------------


async def test_a_retargeted_mr_is_judged_by_the_new_target_branchs_rules(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    # `release` switches the description rule off; `main` keeps it (an error by default).
    fake.commit(
        project.id, "release", message="chore: relax", files={".gitlab/compliance.yml": RELAXED}
    )
    fake.commit(
        project.id, "feature", message="feat: x", parent=fake.branch_head(project.id, "main")
    )
    mr = fake.open_mr(project.id, source_branch="feature", target_branch="release")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert last_bot_state(fake, project.id, mr.head_sha) == "success"

    changes = fake.retarget_mr(project.id, mr.iid, "main")
    response = await bot.send(MR_HOOK, hook_for(mr, action="update", changes=changes))
    assert response.json()["status"] == "accepted"
    await bot.settle()
    assert last_bot_state(fake, project.id, mr.head_sha) == "failed"
    assert len(bot_statuses(fake, project.id, mr.head_sha)) == 2
    [note] = fake.notes(project.id, mr.iid)
    assert "`merge_request.description`" in str(note["body"])
    # The new target's config was read, at its own head.
    main_head = fake.branch_head(project.id, "main")
    assert any(r.query.get("ref") == main_head for r in fake.calls("GET", "/repository/"))
