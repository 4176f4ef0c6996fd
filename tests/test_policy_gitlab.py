"""Group policy on the server, end to end over HTTP: a group with two subgroups, a locked
DCO rule in the top group's policy project, and projects that try to weaken it."""

from __future__ import annotations

from bot.report import NOTE_MARKER
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, MergeRequest, Project
from tests.gfm import shown_text
from tests.payloads import push_hook
from tests.scenarios import compliant_project, hook_for

MR_HOOK = "Merge Request Hook"
POLICY_FILE = ".gitlab/compliance-policy.yml"
LOCKED_DCO = "rules:\n  commit.dco:\n    severity: error\n    locked: true\n"
# The project's own file tries to switch DCO off, and tightens the title rule.
PROJECT_CONFIG = """\
rules:
  commit.dco: {severity: 'off'}
  merge_request.title: {severity: error, pattern: '^[A-Z]+-[0-9]+ '}
"""


def _policy_project(fake: FakeGitLab, group: str, text: str | None) -> Project:
    project = fake.add_project(path_with_namespace=f"{group}/compliance-policy")
    files = {POLICY_FILE: text} if text is not None else {"README.md": "policy\n"}
    fake.commit(project.id, "main", message="chore: policy", files=files)
    return project


def _group_tree(fake: FakeGitLab, config: str = PROJECT_CONFIG) -> MergeRequest:
    fake.add_group("acme/platform")
    fake.add_group("acme/web")
    app = compliant_project(fake, "acme/platform/app")
    fake.commit(app.id, "main", message="chore: rules", files={".gitlab/compliance.yml": config})
    fake.commit(app.id, "feature", message="feat: no sign-off")  # no Signed-off-by
    return fake.open_mr(app.id, source_branch="feature", title="ABC-1 Add it", description="X.")


def _note(fake: FakeGitLab, mr: MergeRequest) -> str:
    [note] = [n for n in fake.notes(mr.project_id, mr.iid) if NOTE_MARKER in str(n["body"])]
    return shown_text(str(note["body"]))


def _state(fake: FakeGitLab, mr: MergeRequest) -> str:
    return str(fake.statuses(mr.project_id, mr.head_sha)[-1]["status"])


async def _check(fake: FakeGitLab, bot: Bot, mr: MergeRequest, **overrides: object) -> None:
    response = await bot.send(MR_HOOK, hook_for(mr, **overrides))
    assert response.status_code == 202
    await bot.settle()


async def test_a_locked_rule_holds_and_the_weakening_is_reported(
    fake: FakeGitLab, bot: Bot
) -> None:
    _policy_project(fake, "acme", LOCKED_DCO)
    mr = _group_tree(fake)
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "failed"
    note = _note(fake, mr)
    assert "commit.dco" in note  # judged, though the project said off
    assert (
        'ignored commit.dco severity: "off" at .gitlab/compliance.yml:2: locked by '
        "acme/compliance-policy:.gitlab/compliance-policy.yml:2"
    ) in note
    assert "Policy acme/compliance-policy (.gitlab/compliance-policy.yml at " in note


async def test_policies_merge_top_down_and_the_project_may_tighten(
    fake: FakeGitLab, bot: Bot
) -> None:
    _policy_project(fake, "acme", "rules:\n  merge_request.title: {severity: warning}\n")
    # The subgroup's policy overrides the top group's, the project's file overrides both.
    _policy_project(fake, "acme/platform", "rules:\n  merge_request.title: {severity: info}\n")
    mr = _group_tree(
        fake, config="rules:\n  merge_request.title: {severity: error, pattern: '^X'}\n"
    )
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "failed"
    note = _note(fake, mr)
    assert "merge_request.title" in note
    assert (
        "Policy acme/compliance-policy" in note and "Policy acme/platform/compliance-policy" in note
    )


async def test_an_invalid_policy_fails_the_check_with_its_line(fake: FakeGitLab, bot: Bot) -> None:
    _policy_project(fake, "acme", "rules:\n  commit.dco: {severity: loud}\n")
    mr = _group_tree(fake, config="rules:\n  commit.dco: {severity: 'off'}\n")
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "failed"
    note = _note(fake, mr)
    assert "could not read policy `acme/compliance-policy`: invalid" in note
    assert "acme/compliance-policy:.gitlab/compliance-policy.yml:2:" in note


async def test_an_unreadable_policy_fails_the_check(fake: FakeGitLab, bot: Bot) -> None:
    _policy_project(fake, "acme", None)  # the project is there, its file is not
    mr = _group_tree(fake, config="rules:\n  commit.dco: {severity: 'off'}\n")
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "failed"
    assert "could not read policy `acme/compliance-policy`: no .gitlab/compliance-policy.yml" in (
        _note(fake, mr)
    )


async def test_an_extends_cycle_fails_the_check(fake: FakeGitLab, bot: Bot) -> None:
    presets = fake.add_project(path_with_namespace="acme/presets")
    fake.commit(
        presets.id,
        "main",
        message="chore: presets",
        files={
            "a.yml": "extends: ['acme/presets:b.yml']\n",
            "b.yml": "extends: ['acme/presets:a.yml']\n",
        },
    )
    mr = _group_tree(fake, config="extends: ['acme/presets:a.yml']\n")
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "failed"
    assert "a cycle" in _note(fake, mr)


async def test_a_push_to_the_policy_project_is_read_at_once(fake: FakeGitLab, bot: Bot) -> None:
    policy = _policy_project(fake, "acme", "rules:\n  commit.dco: {severity: warning}\n")
    mr = _group_tree(fake)
    await _check(fake, bot, mr)
    assert _state(fake, mr) == "success"  # the project switched DCO off; nothing locked it
    before = policy.branches["main"]
    after = fake.commit(
        policy.id, "main", message="chore: lock DCO", files={POLICY_FILE: LOCKED_DCO}
    )
    # The same target commit of the project: without the policy's push hook, the bot would
    # keep what it read for that commit until the cache's TTL.
    hook = push_hook(project_id=policy.id, branch="main", before=before, after=after, commits=[])
    assert (await bot.send("Push Hook", hook)).status_code == 202
    await bot.settle()
    await _check(fake, bot, mr, action="reopen")
    assert _state(fake, mr) == "failed"
    assert "locked by acme/compliance-policy" in _note(fake, mr)
