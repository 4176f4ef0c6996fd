"""Merge request checked: driven by real webhooks over HTTP, judged by what GitLab holds."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from bot.report import NOTE_MARKER, escape
from tests.conftest import Bot, delivery_calls, running_bot
from tests.fake_gitlab import FakeGitLab, MergeRequest
from tests.gfm import shown_text
from tests.payloads import note_hook, push_hook
from tests.scenarios import compliant_project, hook_for, judged_mr, project_with_rules

MR_HOOK = "Merge Request Hook"


ZERO = "0" * 40


def _open_mr(
    fake: FakeGitLab, *, message: str, description: str = "Adds a feature."
) -> MergeRequest:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message=message, files={"src/feature.py": "x = 1\n"})
    return fake.open_mr(
        project.id, source_branch="feature", title="Add a feature", description=description
    )


def _bot_notes(fake: FakeGitLab, mr: MergeRequest) -> list[dict[str, object]]:
    return [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]


def _final_status(fake: FakeGitLab, project_id: int, sha: str) -> dict[str, object]:
    statuses = [s for s in fake.statuses(project_id, sha) if s["name"] == "compliance"]
    assert statuses, f"no compliance status on {sha}"
    return statuses[-1]


async def test_problems_are_named_in_one_note_and_fixing_them_turns_it_green(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="Added stuff", description="")
    first_head = mr.head_sha

    response = await bot.send(MR_HOOK, hook_for(mr))
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}
    await bot.settle()

    [note] = _bot_notes(fake, mr)
    body = str(note["body"])
    assert "Added stuff" in body  # the offending commit is named
    assert "`commit.conventional`" in body
    assert "`merge_request.description`" in body
    # One finding for the header that is not a Conventional Commit (not one per
    # commitlint sub-rule), one for the empty description.
    assert ":x: Compliance: 2 errors, 0 warnings" in body
    states = [s["status"] for s in fake.statuses(mr.project_id, first_head)]
    assert states == ["failed"]  # `running` was updated in place, as GitLab does
    status = _final_status(fake, mr.project_id, first_head)
    assert status["description"] == "2 errors, 0 warnings"
    assert status["target_url"] == f"{mr.web_url}#note_{note['id']}"

    # The author rewrites the commit, force-pushes, and fills in the description.
    base = fake.merge_request(mr.project_id, mr.iid).base_sha
    fixed = fake.commit(
        mr.project_id,
        "feature-fixed",
        message="feat: add the feature",
        files={"src/feature.py": "x = 1\n"},
        parent=base,
    )
    fake.force_branch(mr.project_id, "feature", fixed)
    mr.description = "Adds the feature."
    update = hook_for(
        mr,
        action="update",
        oldrev=first_head,
        changes={"description": {"previous": "", "current": mr.description}},
    )
    assert (await bot.send(MR_HOOK, update)).status_code == 202
    await bot.settle()

    [same_note] = _bot_notes(fake, mr)
    assert same_note["id"] == note["id"]
    assert "all checks passed" in str(same_note["body"])
    assert "Added stuff" not in str(same_note["body"])
    new_status = _final_status(fake, mr.project_id, fixed)
    assert new_status["status"] == "success"
    assert new_status["description"] == "passed with 0 warnings" or new_status[
        "description"
    ].startswith("all ")


async def test_wrong_or_missing_token_leaves_gitlab_untouched(fake: FakeGitLab, bot: Bot) -> None:
    mr = _open_mr(fake, message="feat: add it")
    for token in ("wrong-secret", None, ""):
        response = await bot.send(MR_HOOK, hook_for(mr), token=token)
        assert response.status_code == 401
        assert "hook-secret" not in response.text
    await bot.settle()
    assert delivery_calls(fake) == []


async def test_redelivery_does_nothing_new(fake: FakeGitLab, bot: Bot) -> None:
    mr = _open_mr(fake, message="feat: add it")
    payload = hook_for(mr)
    assert (await bot.send(MR_HOOK, payload, idempotency_key="k-1")).status_code == 202
    await bot.settle()
    calls_after_first = len(fake.requests)

    again = await bot.send(MR_HOOK, payload, idempotency_key="k-1")
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    await bot.settle()
    assert len(fake.requests) == calls_after_first
    assert len(_bot_notes(fake, mr)) == 1


async def test_redelivery_without_idempotency_key_is_recognised_by_its_body(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    payload = hook_for(mr)
    # GitLab before 17.4 sends no Idempotency-Key; the event UUID differs per delivery.
    first = await bot.send(MR_HOOK, payload, headers={"Idempotency-Key": ""})
    second = await bot.send(MR_HOOK, payload, headers={"Idempotency-Key": ""})
    assert (first.status_code, second.status_code) == (202, 200)


async def test_update_that_does_not_change_the_note_text_does_not_edit_it(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    [note] = _bot_notes(fake, mr)

    retitled = hook_for(
        mr,
        action="update",
        title="Add a feature, renamed",
        changes={"title": {"previous": mr.title, "current": "Add a feature, renamed"}},
    )
    assert (await bot.send(MR_HOOK, retitled)).status_code == 202
    await bot.settle()

    assert fake.calls("PUT", "/notes/") == []
    assert _bot_notes(fake, mr) == [note]
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"


async def test_gitlab_500_on_diffs_ends_failed_naming_the_infrastructure_error(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 500)
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()

    status = _final_status(fake, mr.project_id, mr.head_sha)
    assert status["status"] == "failed"
    description = str(status["description"])
    assert description.startswith("could not complete:")
    assert "/diffs" in description and "500" in description
    [note] = _bot_notes(fake, mr)
    assert "could not complete" in str(note["body"])
    assert "passed" not in str(note["body"])
    # Bounded retries: the configured 3 attempts, then it gave up.
    assert len(fake.calls("GET", "/diffs")) == 3


async def test_rate_limit_is_waited_out_as_gitlab_asks(fake: FakeGitLab, bot: Bot) -> None:
    mr = _open_mr(fake, message="feat: add it")
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 429, times=1, retry_after=1)
    started = time.monotonic()
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"


async def test_rate_limit_longer_than_the_retry_budget_fails_honestly(fake: FakeGitLab) -> None:
    async with running_bot(fake, retry_total_seconds=2.0) as bot:
        mr = _open_mr(fake, message="feat: add it")
        fake.fail("GET", r"/merge_requests/\d+/diffs$", 429, retry_after=3600)
        await bot.send(MR_HOOK, hook_for(mr))
        await bot.settle()
        status = _final_status(fake, mr.project_id, mr.head_sha)
        assert status["status"] == "failed"
        assert "429" in str(status["description"])


async def test_a_502_is_retried_soon_whatever_the_rate_limit_window_says(
    fake: FakeGitLab, bot: Bot
) -> None:
    # GitLab sends RateLimit-Reset (the end of the throttle's window, a Unix time) on every
    # answer; on a self-managed instance the window is an hour by default. A 502 is not a
    # request to wait for it: only a 429 or an explicit Retry-After is.
    fake.rate_limit_period_seconds = 3600
    mr = _open_mr(fake, message="feat: add it")
    fake.fail("GET", r"/repository/compare$", 502, times=1)
    fake.fail("GET", r"/merge_requests/\d+/diffs$", 503, times=1)
    started = time.monotonic()
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"
    assert [r.status for r in fake.calls("GET", "/repository/compare")][:2] == [502, 200]
    assert time.monotonic() - started < 30


async def test_answers_lost_after_gitlab_wrote_leave_one_note_and_the_right_status(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    # The note is created and the status set, but both answers are lost on the way back.
    fake.drop("POST", r"/merge_requests/\d+/notes$", after_processing=True)
    fake.drop("POST", r"/statuses/", after_processing=True)
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert [m for m, _, _ in fake.processed_then_dropped] == ["POST", "POST"]
    assert len(_bot_notes(fake, mr)) == 1
    final = _final_status(fake, mr.project_id, mr.head_sha)
    assert final["status"] == "success"
    assert str(final["target_url"]).endswith(f"#note_{_bot_notes(fake, mr)[0]['id']}")


async def test_heads_delivered_out_of_order_end_on_the_newest_head(
    fake: FakeGitLab, bot: Bot
) -> None:
    # GitLab sends hooks from Sidekiq, and two replicas accept them in whatever order their
    # database commits: the older head's event can be journaled after the newer one's and
    # replace it. The check that runs must still end on the MR's newest head.
    mr = _open_mr(fake, message="feat: add it")
    first = mr.head_sha
    middle = fake.commit(mr.project_id, "feature", message="fix: middle")
    newest = fake.commit(mr.project_id, "feature", message="Not conventional")
    newer_hook = hook_for(mr, action="update", oldrev=middle, head_sha=newest)
    older_hook = hook_for(mr, action="update", oldrev=first, head_sha=middle)
    for payload in (newer_hook, older_hook):
        assert (await bot.send(MR_HOOK, payload)).status_code == 202
    await bot.settle()
    assert _final_status(fake, mr.project_id, newest)["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert f"`{newest[:8]}`" in str(note["body"])
    for sha in (first, middle):  # no older head is left `running`
        assert [s["status"] for s in fake.statuses(mr.project_id, sha)][-1:] != ["running"]


async def test_an_older_push_journaled_last_does_not_end_on_its_older_head(
    fake: FakeGitLab, bot: Bot
) -> None:
    # The older push's check can reuse what the first check read (its oldrev is the head
    # judged then) and so never reads the MR's head: it must still not be the last word.
    mr = _open_mr(fake, message="feat: add it")
    assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
    await bot.settle()
    first = mr.head_sha
    older = fake.commit(mr.project_id, "feature", message="fix: older")
    newest = fake.commit(mr.project_id, "feature", message="Not conventional")
    # The newest head's check is about to publish when the older push is journaled.
    arrived, release = fake.hold("PUT", r"/notes/\d+$")
    newest_hook = hook_for(mr, action="update", oldrev=older, head_sha=newest)
    assert (await bot.send(MR_HOOK, newest_hook)).status_code == 202
    await arrived.wait()
    older_hook = hook_for(mr, action="update", oldrev=first, head_sha=older)
    assert (await bot.send(MR_HOOK, older_hook)).status_code == 202
    release.set()
    await bot.settle()
    assert _final_status(fake, mr.project_id, newest)["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert f"`{newest[:8]}`" in str(note["body"])


async def test_a_check_superseded_while_running_leaves_no_running_status(
    fake: FakeGitLab,
) -> None:
    async with running_bot(fake, running_status_delay_seconds=0) as bot:
        mr = _open_mr(fake, message="feat: add it")
        first = mr.head_sha
        # The first check has read everything and shows `running` when the push lands.
        arrived, release = fake.hold("POST", r"/merge_requests/\d+/notes$")
        assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
        await arrived.wait()
        assert [s["status"] for s in fake.statuses(mr.project_id, first)] == ["running"]
        newest = fake.commit(mr.project_id, "feature", message="fix: more")
        pushed = hook_for(mr, action="update", oldrev=first, head_sha=newest)
        assert (await bot.send(MR_HOOK, pushed)).status_code == 202
        release.set()
        await bot.settle()
    assert [s["status"] for s in fake.statuses(mr.project_id, first)][-1] == "canceled"
    assert _final_status(fake, mr.project_id, newest)["status"] == "success"
    [note] = _bot_notes(fake, mr)
    assert f"`{newest[:8]}`" in str(note["body"])


async def test_a_check_out_of_runs_while_gitlab_is_down_ends_its_running_once_gitlab_is_back(
    fake: FakeGitLab,
) -> None:
    async with running_bot(
        fake,
        running_status_delay_seconds=0,
        retry_failed_attempts=1,
        retry_failed_after_seconds=0.1,
        retry_exhausted_after_seconds=0.5,
    ) as bot:
        mr = _open_mr(fake, message="feat: add it")
        # The check shows `running`, then GitLab goes down before the verdict: the
        # "could not complete" status cannot be posted either, and the one run allowed is
        # spent.
        arrived, release = fake.hold("POST", r"/merge_requests/\d+/notes$")
        assert (await bot.send(MR_HOOK, hook_for(mr))).status_code == 202
        await arrived.wait()
        fake.fail("*", r".", 502)
        release.set()
        store = bot.app.state.runtime.store
        deadline = time.monotonic() + 60
        while (await store.counts()).get("failed", 0) != 1:
            assert time.monotonic() < deadline, await store.counts()
            await asyncio.sleep(0.05)
        assert [s["status"] for s in fake.statuses(mr.project_id, mr.head_sha)] == ["running"]
        # GitLab is back: the check runs again on its own, and `running` ends in a verdict.
        fake.clear_faults()
        deadline = time.monotonic() + 60
        while fake.statuses(mr.project_id, mr.head_sha)[-1]["status"] == "running":
            assert time.monotonic() < deadline, fake.statuses(mr.project_id, mr.head_sha)
            await asyncio.sleep(0.05)
        await bot.settle()
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"
    assert len(_bot_notes(fake, mr)) == 1


async def test_status_joins_the_heads_pipeline_instead_of_opening_an_external_one(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    pipeline_id = fake.add_pipeline(mr.source_project_id, mr.head_sha, "feature")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _final_status(fake, mr.project_id, mr.head_sha)["pipeline_id"] == pipeline_id
    assert [p["id"] for p in fake.pipelines(mr.project_id, mr.head_sha)] == [pipeline_id]


async def test_fork_mr_status_goes_to_the_source_project(fake: FakeGitLab, bot: Bot) -> None:
    upstream = compliant_project(fake, "acme/widget")
    fork = fake.add_project(path_with_namespace="ada/widget")
    base = fake.commit(upstream.id, "main", message="docs: note")
    fake.force_branch(fork.id, "main", base)
    fake.commit(fork.id, "feature", message="feat: from a fork", files={"a.py": "1\n"})
    mr = fake.open_mr(
        upstream.id,
        source_branch="feature",
        source_project_id=fork.id,
        description="From a fork.",
    )
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _final_status(fake, fork.id, mr.head_sha)["status"] == "success"
    assert fake.statuses(upstream.id, mr.head_sha) == []
    assert len(_bot_notes(fake, mr)) == 1


async def test_bot_note_is_found_past_the_first_page(fake: FakeGitLab, bot: Bot) -> None:
    mr = _open_mr(fake, message="feat: add it")
    for i in range(130):
        fake.add_note(mr.project_id, mr.iid, f"comment {i}", author_username="reviewer")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    fake.add_note(mr.project_id, mr.iid, "one more", author_username="reviewer")
    newer = fake.commit(mr.project_id, "feature", message="Not conventional")
    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=mr.head_sha, head_sha=newer))
    await bot.settle()
    [note] = _bot_notes(fake, mr)
    assert "Not conventional" in str(note["body"])


async def test_a_human_quoting_the_marker_is_not_mistaken_for_the_bot(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = _open_mr(fake, message="feat: add it")
    fake.add_note(mr.project_id, mr.iid, f"quoting {NOTE_MARKER}", author_username="reviewer")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    mine = [n for n in _bot_notes(fake, mr) if n["author"]["username"] == "compliance-bot"]  # type: ignore[index]
    assert len(mine) == 1


async def test_running_over_running_and_conflicts_are_handled(fake: FakeGitLab, bot: Bot) -> None:
    mr = _open_mr(fake, message="feat: add it")
    # A check that died mid-way left `running` behind; GitLab refuses running over running.
    await bot.app.state.runtime.services.gitlab.post_status(
        mr.source_project_id, mr.head_sha, state="running", name="compliance", description="x"
    )
    # And a concurrent update of the same sha answers 409 once.
    fake.fail("POST", r"/statuses/", 409, times=1)
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"


async def test_concurrent_events_stay_within_the_connection_pool(fake: FakeGitLab) -> None:
    async with running_bot(fake, http_pool_size=4) as bot:
        project = compliant_project(fake)
        mrs = []
        for i in range(50):
            fake.commit(project.id, f"topic-{i}", message=f"feat: topic {i}")
            mrs.append(fake.open_mr(project.id, source_branch=f"topic-{i}", description="Topic."))
        threads_before = threading.active_count()
        responses = await asyncio.gather(*(bot.send(MR_HOOK, hook_for(mr)) for mr in mrs))
        assert {r.status_code for r in responses} == {202}
        await bot.settle()
        for mr in mrs:
            assert _final_status(fake, project.id, mr.head_sha)["status"] == "success"
            assert len(_bot_notes(fake, mr)) == 1
        assert fake.connections() <= 4
        # No thread was started and the loop's thread-pool executor was never created.
        assert threading.active_count() == threads_before
        assert asyncio.get_running_loop()._default_executor is None  # type: ignore[attr-defined]


# -- later events read only what changed ------------------------------------------------------


async def _opened_and_checked(fake: FakeGitLab, bot: Bot, **mr: str) -> MergeRequest:
    opened = _open_mr(fake, message="feat: add it", **mr)
    await bot.send(MR_HOOK, hook_for(opened))
    await bot.settle()
    return opened


async def test_a_label_change_that_leaves_the_verdict_reads_and_writes_nothing(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _opened_and_checked(fake, bot)
    [note] = _bot_notes(fake, mr)
    calls_before = len(fake.requests)

    labelled = hook_for(
        mr,
        action="update",
        labels=["backend"],
        changes={"labels": {"previous": [], "current": [{"title": "backend"}]}},
    )
    assert (await bot.send(MR_HOOK, labelled)).status_code == 202
    await bot.settle()

    assert fake.requests[calls_before:] == []
    assert _bot_notes(fake, mr) == [note]
    assert [s["status"] for s in fake.statuses(mr.project_id, mr.head_sha)] == ["success"]


async def test_a_description_change_is_judged_from_the_payload_alone(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _opened_and_checked(fake, bot, description="")
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "failed"
    calls_before = len(fake.requests)

    described = hook_for(
        mr,
        action="update",
        description="Adds a feature.",
        changes={"description": {"previous": "", "current": "Adds a feature."}},
    )
    await bot.send(MR_HOOK, described)
    await bot.settle()

    made = [f"{r.method} {r.path.split('?')[0]}" for r in fake.requests[calls_before:]]
    # The verdict changed: the note is edited and the status posted (GitLab puts it in the
    # sha's newest pipeline itself). The rules' inputs were not read again.
    assert [m.split()[0] for m in made] == ["PUT", "POST"], made
    [note] = _bot_notes(fake, mr)
    assert "`merge_request.description`" not in str(note["body"]).split("passed")[0]
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "success"


async def test_new_commits_cost_a_compare_and_give_the_verdict_of_a_full_check(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _opened_and_checked(fake, bot)
    old = mr.head_sha
    fake.commit(mr.project_id, "feature", message="Fix things", files={"src/new.py": "y = 2\n"})
    calls_before = len(fake.requests)

    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=old))
    await bot.settle()

    made = fake.requests[calls_before:]
    project_path = f"/api/v4/projects/{mr.project_id}"
    reads = sorted(
        r.path.split("?")[0].removeprefix(project_path) for r in made if r.method == "GET"
    )
    # The new commit and the file it changed, and the target branch's commit (to know the
    # rules and files still hold). Nothing else is read.
    assert reads == ["/repository/branches/main", "/repository/compare"]
    assert sorted(r.method for r in made) == ["GET", "GET", "POST", "PUT"]
    status = _final_status(fake, mr.project_id, mr.head_sha)
    assert status["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert "Fix things" in str(note["body"]) and "2 commits" in str(note["body"])

    # A recheck reads everything afresh, and finds the note already says the same.
    edits = len(fake.calls("PUT", "/notes/"))
    commit_reads = len(fake.calls("GET", f"/merge_requests/{mr.iid}/diffs"))
    author = fake.add_note(mr.project_id, mr.iid, "/compliance recheck", author_username="ada")
    await bot.send("Note Hook", note_hook(mr, author))
    await bot.settle()
    assert len(fake.calls("GET", f"/merge_requests/{mr.iid}/diffs")) == commit_reads + 1
    assert len(fake.calls("PUT", "/notes/")) == edits
    assert _bot_notes(fake, mr) == [note]


async def test_a_moved_target_branch_brings_its_new_rules(fake: FakeGitLab, bot: Bot) -> None:
    mr = await _opened_and_checked(fake, bot)
    fake.commit(
        mr.project_id,
        "main",
        message="chore: require sign-off",
        files={".gitlab/compliance.yml": "rules:\n  commit.dco: {severity: error}\n"},
    )
    old = mr.head_sha
    fake.commit(mr.project_id, "feature", message="feat: more")

    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=old))
    await bot.settle()

    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert "`commit.dco`" in str(note["body"])


async def test_a_force_push_is_judged_on_the_rewritten_commits(fake: FakeGitLab, bot: Bot) -> None:
    mr = await _opened_and_checked(fake, bot)
    old = mr.head_sha
    main = fake.branch_head(mr.project_id, "main")
    rewritten = fake.commit(mr.project_id, "scratch", message="Rewritten badly", parent=main)
    fake.force_branch(mr.project_id, "feature", rewritten)

    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=old))
    await bot.settle()

    assert mr.head_sha == rewritten
    assert _final_status(fake, mr.project_id, rewritten)["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert "Rewritten badly" in str(note["body"])
    assert "feat: add it" not in str(note["body"])


async def test_a_deleted_note_is_written_again_on_the_next_change(
    fake: FakeGitLab, bot: Bot
) -> None:
    mr = await _opened_and_checked(fake, bot)
    [note] = _bot_notes(fake, mr)
    fake.delete_note(mr.project_id, mr.iid, int(str(note["id"])))
    old = mr.head_sha
    fake.commit(mr.project_id, "feature", message="feat: more")

    await bot.send(MR_HOOK, hook_for(mr, action="update", oldrev=old))
    await bot.settle()

    [again] = _bot_notes(fake, mr)
    assert again["id"] != note["id"]
    project_url = mr.web_url.rsplit("/-/merge_requests/", 1)[0]
    head = f"[`{mr.head_sha[:8]}`]({project_url}/-/commit/{mr.head_sha})"
    assert f"Checked {head}, 2 commits" in str(again["body"])


async def test_what_was_learnt_survives_a_restart(fake: FakeGitLab, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    mr = _open_mr(fake, message="feat: add it")
    main = fake.branch_head(mr.project_id, "main")
    async with running_bot(fake, compliance_db=journal) as first:
        await first.send(MR_HOOK, hook_for(mr))
        # The push that made `main`, so that catch-up finds no branch left unchecked either.
        push = push_hook(
            project_id=mr.project_id, branch="main", before=ZERO, after=main, commits=[]
        )
        await first.send("Push Hook", push)
        await first.settle()
    calls_before = len(fake.requests)

    async with running_bot(fake, compliance_db=journal) as second:
        labelled = hook_for(
            mr,
            action="update",
            labels=["backend"],
            changes={"labels": {"previous": [], "current": [{"title": "backend"}]}},
        )
        await second.send(MR_HOOK, labelled)
        await second.settle()

    # Catch-up on start lists the open MRs and the recent branches, and finds their heads
    # checked; the label change itself reads and writes nothing.
    made = [f"{r.method} {r.path}" for r in fake.requests[calls_before:]]
    assert [m for m in made if not m.startswith("GET ")] == []
    assert [m for m in made if f"/merge_requests/{mr.iid}" in m or "/repository/" in m] == [
        m for m in made if m.endswith(("/statuses", "/repository/branches"))
    ]


async def test_mrs_of_one_target_commit_share_its_config_and_tree_reads(
    fake: FakeGitLab, bot: Bot
) -> None:
    first = await _opened_and_checked(fake, bot)
    fake.commit(first.project_id, "other", message="feat: other", files={"src/o.py": "o\n"})
    second = fake.open_mr(first.project_id, source_branch="other", description="Other.")
    tree_reads = len(fake.calls("GET", "/repository/tree"))

    await bot.send(MR_HOOK, hook_for(second))
    await bot.settle()

    # The target branch has not moved: its tree was read for the first MR already.
    assert len(fake.calls("GET", "/repository/tree")) == tree_reads
    assert _final_status(fake, second.project_id, second.head_sha)["status"] == "success"

    # A new target commit is a new key: read afresh, with its new rules.
    fake.commit(
        first.project_id,
        "main",
        message="chore: rules",
        files={".gitlab/compliance.yml": "rules:\n  commit.dco: {severity: error}\n"},
    )
    await bot.send(MR_HOOK, hook_for(second, action="reopen"))
    await bot.settle()
    assert len(fake.calls("GET", "/repository/tree")) == tree_reads + 2
    assert _final_status(fake, second.project_id, second.head_sha)["status"] == "failed"


async def test_markdown_is_judged_as_gitlab_renders_it(fake: FakeGitLab, bot: Bot) -> None:
    # Issue 16: `Intro <!--` does not open a comment in a paragraph (CommonMark), so GitLab
    # shows the task below it with an open checkbox; the checklist rule must see it too.
    project = project_with_rules(
        fake,
        "rules:\n  merge_request.checklist: {severity: error}\n",
        message="chore: require finished checklists",
    )
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: add it",
        files={"src/f.py": "x = 1\n"},
        title="Add it",
        description="Intro <!--\n- [ ] task",
    )
    status = _final_status(fake, mr.project_id, mr.head_sha)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    [note] = _bot_notes(fake, mr)
    assert "`merge_request.checklist`" in str(note["body"])
    # As the note shows it: user text goes through the one escaping function.
    assert escape("unchecked task: task") in str(note["body"])


async def test_a_description_of_template_comments_only_is_empty(fake: FakeGitLab, bot: Bot) -> None:
    # The untouched MR template: GitLab shows nothing of its comments.
    template = "<!-- What does this MR do? -->\n\n<!--\nHow can a reviewer check it?\n-->\n"
    mr = _open_mr(fake, message="feat: add it", description=template)
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _final_status(fake, mr.project_id, mr.head_sha)["status"] == "failed"
    [note] = _bot_notes(fake, mr)
    assert "`merge_request.description`" in str(note["body"])


async def test_file_patterns_mean_what_git_means(fake: FakeGitLab, bot: Bot) -> None:
    # Issue 16: `!fixtures/id_rsa` cannot re-include a file from the excluded `fixtures/` (git
    # never enters an excluded directory), and `[[:digit:]]` is a POSIX class.
    config = (
        "rules:\n"
        "  files.prohibited:\n"
        "    severity: error\n"
        "    paths: ['fixtures/', 'keys[[:digit:]]/']\n"
        "    exclude: ['fixtures/', '!fixtures/id_rsa']\n"
    )
    project = project_with_rules(fake, config, message="chore: ban keys")
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: add keys",
        files={"fixtures/id_rsa": "test key\n", "keys1/id_rsa": "real key\n"},
        title="Add keys",
        description="Keys.",
    )
    status = _final_status(fake, mr.project_id, mr.head_sha)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    [note] = _bot_notes(fake, mr)
    assert "keys1/id_rsa is prohibited" in shown_text(str(note["body"]))
    assert "fixtures/id_rsa is prohibited" not in shown_text(str(note["body"]))


async def test_secrets_follow_gitleaks_allowlists(fake: FakeGitLab, bot: Bot) -> None:
    # Issue 16: gitleaks' own false-positive rules come with its patterns: a lock file is not
    # scanned, Firebase's published example key is not a secret; a real-looking key still is.
    project = project_with_rules(
        fake, "rules:\n  files.secrets: {severity: error}\n", message="chore: scan for secrets"
    )
    token = "ghp_" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(36))
    example = "AIzaSy" + "abcdefghijklmnopqrstuvwxyz1234567"
    live = "sk_live_" + "".join(chr(ord("A") + (i * 11) % 26) for i in range(30))
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: add payments",
        files={
            "yarn.lock": f'"resolved" "https://{token}@example.com/x.tgz"\n',
            "src/firebase.js": f'const apiKey = "{example}";\n',
            "src/pay.py": f'STRIPE_KEY = "{live}"\n',
        },
        title="Pay",
        description="Payments.",
    )
    status = _final_status(fake, mr.project_id, mr.head_sha)
    assert (status["status"], status["description"]) == ("failed", "1 error, 0 warnings")
    body = str(_bot_notes(fake, mr)[0]["body"])
    assert "src/pay.py:1" in body
    assert "yarn.lock" not in body and "src/firebase.js" not in body
