"""`compliance-bot hooks install|status`: the judgement as pure functions, then the command as
an operator runs it, a real process against the fake GitLab's project hooks API."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.hooks import Action, State, judge_hooks
from tests.conftest import WEBHOOK_SECRET, running_bot
from tests.fake_gitlab import FakeGitLab
from tests.git_repos import run_cli_async

URL = "https://bot.example.com/webhook"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RIGHT: dict[str, Any] = {
    "id": 7,
    "url": URL,
    "push_events": True,
    "merge_requests_events": True,
    "note_events": True,
    "enable_ssl_verification": True,
    "push_events_branch_filter": "",
    "alert_status": "executable",
    "disabled_until": None,
}


# -- the judgement ---------------------------------------------------------------------------


def test_a_project_without_the_bots_hook_needs_one() -> None:
    other = {**RIGHT, "id": 3, "url": "https://ci.example.com/hook"}
    judgement = judge_hooks([other], URL, NOW)
    assert judgement.state is State.MISSING and judgement.action is Action.CREATE


def test_the_bots_hook_is_found_by_its_url_and_judged_right() -> None:
    judgement = judge_hooks([{**RIGHT, "url": URL + "/"}], URL, NOW)
    assert judgement == judge_hooks([RIGHT], URL, NOW)
    assert judgement.state is State.OK and judgement.hook_id == 7
    assert judgement.action is Action.NONE


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"note_events": False}, "note_events off"),
        ({"merge_requests_events": False}, "merge_requests_events off"),
        ({"enable_ssl_verification": False}, "SSL verification off"),
        ({"push_events_branch_filter": "main"}, "push events only for branches 'main'"),
    ],
)
def test_a_wrong_hook_is_updated(change: dict[str, Any], problem: str) -> None:
    judgement = judge_hooks([{**RIGHT, **change}], URL, NOW)
    assert judgement.state is State.WRONG and judgement.action is Action.UPDATE
    assert judgement.problems == (problem,)


@pytest.mark.parametrize(
    "change",
    [
        {"alert_status": "temporarily_disabled", "disabled_until": "2026-12-04T13:00:00Z"},
        {"alert_status": "disabled", "disabled_until": None},
        # Before `alert_status` was exposed, `disabled_until` in the future says it.
        {"alert_status": None, "disabled_until": "2026-12-04T13:00:00.000Z"},
    ],
)
def test_a_hook_gitlab_disabled_is_updated_and_tested(change: dict[str, Any]) -> None:
    judgement = judge_hooks([{**RIGHT, **change}], URL, NOW)
    assert judgement.state is State.DISABLED and judgement.action is Action.UPDATE_AND_TEST
    assert "disabled by GitLab" in judgement.problems[-1]


def test_a_backoff_that_has_run_out_is_no_longer_disabled() -> None:
    hook = {**RIGHT, "alert_status": "executable", "disabled_until": "2026-12-04T11:00:00Z"}
    assert judge_hooks([hook], URL, NOW).state is State.OK


# -- the command against the fake GitLab -----------------------------------------------------


async def hooks_cli(fake: FakeGitLab, *args: str) -> tuple[int, str, str]:
    environment = {
        **{k: v for k, v in os.environ.items() if k not in {"GITLAB_URL", "GITLAB_TOKEN"}},
        "GITLAB_URL": fake.base_url,
        "GITLAB_TOKEN": fake.token,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    return await run_cli_async("hooks", *args, env=environment)


def _group(fake: FakeGitLab) -> dict[str, int]:
    fake.add_group("acme/team")
    ids = {
        name: fake.add_project(path_with_namespace=name).id
        for name in ("acme/new", "acme/wrong", "acme/locked", "acme/team/right")
    }
    fake.add_project(path_with_namespace="other/elsewhere")
    fake.add_hook(ids["acme/wrong"], URL, note_events=False, enable_ssl_verification=False)
    fake.add_hook(
        ids["acme/team/right"],
        URL,
        merge_requests_events=True,
        note_events=True,
        token=WEBHOOK_SECRET,
    )
    fake.hooks_forbidden.add(ids["acme/locked"])  # the token is a Developer there
    return ids


def _bot_hook(fake: FakeGitLab, project_id: int, url: str = URL) -> Any:
    [hook] = [h for h in fake.project_hooks(project_id) if h.url == url]
    return hook


def _right(hook: Any) -> bool:
    return (
        hook.events["push_events"]
        and hook.events["merge_requests_events"]
        and hook.events["note_events"]
        and hook.enable_ssl_verification
        and hook.token == WEBHOOK_SECRET
        and not hook.push_events_branch_filter
    )


async def test_install_creates_and_corrects_hooks_across_subgroups_and_is_idempotent(
    fake: FakeGitLab,
) -> None:
    ids = _group(fake)
    wrong_id = _bot_hook(fake, ids["acme/wrong"]).id

    code, out, err = await hooks_cli(fake, "install", "--group", "acme", "--url", URL)

    assert code == 3, out + err  # one project could not be done
    assert _right(_bot_hook(fake, ids["acme/new"]))
    assert _right(_bot_hook(fake, ids["acme/wrong"]))
    assert _bot_hook(fake, ids["acme/wrong"]).id == wrong_id  # corrected in place
    assert fake.project_hooks(ids["acme/locked"]) == []
    assert "403" in out and "Maintainer" in out
    assert fake.project_hooks(fake.add_project(path_with_namespace="other/x").id) == []
    hook_ids = {
        project: _bot_hook(fake, pid).id
        for project, pid in ids.items()
        if pid != ids["acme/locked"]
    }

    code, out, err = await hooks_cli(
        fake, "install", "--group", "acme", "--url", URL, "--format", "json"
    )

    assert code == 3, out + err
    rows = {row["project"]: row for row in json.loads(out)["projects"]}
    assert {name for name, row in rows.items() if row["action"] != "none"} == set()
    assert rows["acme/locked"]["error"] and not rows["acme/locked"]["done"]
    assert {
        p: _bot_hook(fake, pid).id for p, pid in ids.items() if pid != ids["acme/locked"]
    } == hook_ids
    assert not [h for h in fake.hooks.values() if h.project_id not in ids.values()]


async def test_install_dry_run_changes_nothing(fake: FakeGitLab) -> None:
    ids = _group(fake)
    fake.hooks_forbidden.clear()
    before = {h.id: (dict(h.events), h.enable_ssl_verification) for h in fake.hooks.values()}

    code, out, err = await hooks_cli(fake, "install", "--group", "acme", "--url", URL, "--dry-run")

    assert code == 1, out + err  # something would change
    assert "would create" in out and "would update" in out
    assert {
        h.id: (dict(h.events), h.enable_ssl_verification) for h in fake.hooks.values()
    } == before
    assert fake.project_hooks(ids["acme/new"]) == []


async def test_status_reports_a_disabled_hook_and_fix_reenables_it_through_gitlabs_test(
    fake: FakeGitLab,
) -> None:
    project = fake.add_project(path_with_namespace="acme/app")
    fake.commit(project.id, "main", message="chore: init", files={"README.md": "hi\n"})
    async with running_bot(fake) as bot:
        url = f"{bot.url}/webhook"
        hook = fake.add_hook(
            project.id, url, merge_requests_events=True, note_events=True, token=WEBHOOK_SECRET
        )
        fake.fail_hook(hook.id, 5)  # GitLab backed it off after failed deliveries

        code, out, err = await hooks_cli(
            fake, "status", "--project", "acme/app", "--url", url, "--format", "markdown"
        )
        assert code == 1, out + err
        assert "| acme/app |" in out.replace("\\/", "/") and "disabled by GitLab" in out

        code, out, err = await hooks_cli(
            fake, "status", "--project", "acme/app", "--url", url, "--fix"
        )
        assert code == 0, out + err
        assert hook.recent_failures == 0 and hook.disabled_until is None  # enabled again
        assert len(hook.test_requests) == 1  # GitLab's test request reached the bot: a 2xx

        code, out, err = await hooks_cli(fake, "status", "--project", "acme/app", "--url", url)
        assert code == 0, out + err
        assert "nothing to do" in out
        await bot.settle()


async def test_a_test_request_the_bot_refuses_leaves_the_hook_disabled_and_says_so(
    fake: FakeGitLab,
) -> None:
    project = fake.add_project(path_with_namespace="acme/app")
    fake.commit(project.id, "main", message="chore: init", files={"README.md": "hi\n"})
    async with running_bot(fake, webhook_secret="another-secret") as bot:
        url = f"{bot.url}/webhook"
        hook = fake.add_hook(project.id, url, merge_requests_events=True, note_events=True)
        fake.fail_hook(hook.id, 40)  # permanently disabled

        code, out, err = await hooks_cli(
            fake, "status", "--project", "acme/app", "--url", url, "--fix", "--format", "json"
        )

    assert code == 3, out + err
    [row] = json.loads(out)["projects"]
    assert not row["done"] and "422" in row["error"]
    assert hook.alert_status(datetime.now(UTC)) == "disabled"
