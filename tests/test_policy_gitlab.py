"""Group policy on the server, end to end over HTTP: a group with two subgroups, a locked
DCO rule in the top group's policy project, and projects that try to weaken it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot.audit import AuditOptions, Status, run_audit
from bot.local import open_repository, read_config
from bot.report import NOTE_MARKER
from bot.settings import GitLabSettings
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab, MergeRequest, Project
from tests.gfm import shown_text
from tests.git_repos import HYGIENE_FILES as GIT_HYGIENE
from tests.git_repos import Repo, make_repo, run_cli, run_cli_async
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


def _presets(fake: FakeGitLab, files: dict[str, str | None]) -> Project:
    """The project `acme/presets` that configs extend, its `main` holding `files`."""
    presets = fake.add_project(path_with_namespace="acme/presets")
    fake.commit(presets.id, "main", message="chore: presets", files=files)
    return presets


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
    _presets(
        fake,
        {
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


LOCKED_CODEOWNERS = "rules:\n  repository.codeowners: {severity: error, locked: true}\n"
CODEOWNERS_OFF = "rules:\n  repository.codeowners: {severity: 'off'}\n"


async def test_server_check_and_audit_resolve_the_same_rules(
    fake: FakeGitLab, bot: Bot, tmp_path: Path
) -> None:
    _policy_project(fake, "acme", LOCKED_CODEOWNERS)
    fake.add_group("acme/platform")
    app = compliant_project(fake, "acme/platform/app")
    fake.commit(
        app.id, "main", message="chore: rules", files={".gitlab/compliance.yml": CODEOWNERS_OFF}
    )
    before = app.branches["main"]
    after = fake.commit(app.id, "topic", message="feat: more", files={"b.py": "1\n"})
    # The server: a push to a branch without an MR, judged by the default branch's rules.
    hook = push_hook(project_id=app.id, branch="topic", before=before, after=after, commits=[])
    assert (await bot.send("Push Hook", hook)).status_code == 202
    await bot.settle()
    assert fake.statuses(app.id, after)[-1]["status"] == "failed"
    # The audit: the same locked rule, and the weakening it ignored.
    result = await run_audit(
        GitLabSettings(gitlab_url=fake.base_url, gitlab_token=fake.token),
        AuditOptions(group="acme/platform"),
    )
    [row] = [r for r in result.projects if r.name == "acme/platform/app"]
    assert row.status is Status.NON_COMPLIANT
    assert [f.rule for f in row.findings if f.severity.value == "error"] == [
        "repository.codeowners"
    ]
    assert any("ignored repository.codeowners severity" in d for d in row.details)
    # `check`, locally, with the policy file given: the same rule, the same lock.
    repo = make_repo(tmp_path)
    repo.commit("chore: initial commit", {**GIT_HYGIENE, ".gitlab/compliance.yml": CODEOWNERS_OFF})
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(LOCKED_CODEOWNERS)
    config = read_config(
        open_repository(repo.path), repo.head(), policies=[(str(policy_file), LOCKED_CODEOWNERS)]
    )
    assert config.rule("repository.codeowners").severity == "error"
    repo.checkout("feature", new=True)
    repo.commit("feat: more", {"b.py": "1\n"})
    judged = run_cli(
        "check", "--policy", str(policy_file), "--format", "json", cwd=repo.path, env=repo.env
    )
    rules = {f["rule"] for f in json.loads(judged.stdout)["findings"]}
    assert "repository.codeowners" in rules, judged.stderr
    unpoliced = run_cli("check", "--format", "json", cwd=repo.path, env=repo.env)
    assert "repository.codeowners" not in {
        f["rule"] for f in json.loads(unpoliced.stdout)["findings"]
    }
    # A policy file that is not text is refused with its reason, never judged as no policy.
    policy_file.write_bytes(b"\xff\xfe" + LOCKED_CODEOWNERS.encode())
    refused = run_cli("check", "--policy", str(policy_file), cwd=repo.path, env=repo.env)
    assert refused.returncode == 2, refused.stderr
    assert f"could not read policy: {policy_file}:1:1: not UTF-8 text" in refused.stderr


# -- `check` in CI with COMPLIANCE_TOKEN: the group policy as the server reads it ------------


def _ci_checkout(
    tmp_path: Path, fake: FakeGitLab, mr: MergeRequest, config: str = PROJECT_CONFIG
) -> tuple[Repo, dict[str, str]]:
    """The MR's commits in a real clone (the project's config on main, a commit without a
    sign-off on the branch), and the MR pipeline's variables, with the token at the fake."""
    repo = make_repo(tmp_path)
    repo.commit("chore: rules", {**GIT_HYGIENE, ".gitlab/compliance.yml": config})
    repo.checkout("feature", new=True)
    repo.commit("feat: no sign-off", {"b.py": "1\n"})
    return repo, {
        **repo.env,
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": fake.base_url,
        "COMPLIANCE_TOKEN": fake.token,
        "CI_PROJECT_ID": str(mr.project_id),
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_COMMIT_SHA": repo.head(),
        "CI_MERGE_REQUEST_IID": str(mr.iid),
        "CI_MERGE_REQUEST_PROJECT_ID": str(mr.project_id),
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": str(mr.source_project_id),
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": repo.git("merge-base", "main", "HEAD"),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_TITLE": mr.title,
        "CI_MERGE_REQUEST_DESCRIPTION": mr.description,
        "CI_MERGE_REQUEST_LABELS": "",
        "CI_MERGE_REQUEST_SQUASH_ON_MERGE": "false",
    }


async def test_check_in_ci_with_a_token_holds_the_group_policy_lock(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    _policy_project(fake, "acme", LOCKED_DCO)
    mr = _group_tree(fake)
    repo, env = _ci_checkout(tmp_path, fake, mr)
    build = tmp_path / "build"
    build.mkdir()
    code, out, err = await run_cli_async(
        "check", str(repo.path), "--format", "json", "--post-note", cwd=build, env=env
    )
    document = json.loads(out)
    assert document["error"] is None, (document, err)
    assert code == 1
    assert "commit.dco" in {f["rule"] for f in document["findings"] if f["severity"] == "error"}
    ignored = (
        'ignored commit.dco severity: "off" at .gitlab/compliance.yml:2: locked by '
        "acme/compliance-policy:.gitlab/compliance-policy.yml:2"
    )
    assert ignored in err  # in the job's log
    note = _note(fake, mr)  # and in the MR note's footer, as the server says it
    assert ignored in note
    assert "Policy acme/compliance-policy (.gitlab/compliance-policy.yml at " in note


async def test_check_in_ci_with_a_token_fails_on_an_invalid_policy(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    _policy_project(fake, "acme", "rules:\n  commit.dco: {severity: loud}\n")
    mr = _group_tree(fake)
    repo, env = _ci_checkout(tmp_path, fake, mr)
    code, out, err = await run_cli_async("check", "--format", "json", cwd=repo.path, env=env)
    assert code == 2, (out, err)
    document = json.loads(out)
    assert "could not read policy `acme/compliance-policy`: invalid" in document["error"]
    assert any(
        d.startswith("acme/compliance-policy:.gitlab/compliance-policy.yml:2:")
        for d in document["details"]
    ), document


async def test_check_in_ci_with_a_token_follows_extends(fake: FakeGitLab, tmp_path: Path) -> None:
    _presets(fake, {"dco.yml": "rules:\n  commit.dco: {severity: error}\n"})
    config = "extends: ['acme/presets:dco.yml']\n"
    mr = _group_tree(fake, config=config)
    repo, env = _ci_checkout(tmp_path, fake, mr, config=config)
    code, out, err = await run_cli_async("check", "--format", "json", cwd=repo.path, env=env)
    document = json.loads(out)
    assert document["error"] is None, (document, err)
    assert "commit.dco" in {f["rule"] for f in document["findings"]}
    assert code == 1


# -- `config validate` follows `extends` with GITLAB_URL and GITLAB_TOKEN ------------------


async def test_config_validate_follows_extends_with_a_token(
    fake: FakeGitLab, tmp_path: Path
) -> None:
    _presets(
        fake,
        {
            "good.yml": "extends: ['acme/presets:base.yml']\n",
            "base.yml": "rules:\n  commit.dco: {severity: error}\n",
            "bad.yml": "rules:\n  commit.dco: {severity: loud}\n",
            "a.yml": "extends: ['acme/presets:b.yml']\n",
            "b.yml": "extends: ['acme/presets:a.yml']\n",
        },
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "GITLAB_URL": fake.base_url,
        "GITLAB_TOKEN": fake.token,
    }
    files = {}
    for name in ("good", "bad", "a", "missing"):
        files[name] = tmp_path / f"{name}.yml"
        files[name].write_text(f"extends: ['acme/presets:{name}.yml']\n")
    code, out, err = await run_cli_async(
        "config", "validate", str(files["good"]), cwd=tmp_path, env=env
    )
    assert (code, out) == (0, f"{files['good']}: valid\n"), err
    code, out, err = await run_cli_async(
        "config", "validate", str(files["bad"]), cwd=tmp_path, env=env
    )
    assert code == 2
    assert "acme/presets:bad.yml:2:" in out and "severity" in out  # the target's file and line
    code, out, err = await run_cli_async(
        "config", "validate", str(files["a"]), cwd=tmp_path, env=env
    )
    assert code == 2
    assert "a cycle" in out
    code, out, err = await run_cli_async(
        "config", "validate", str(files["missing"]), cwd=tmp_path, env=env
    )
    assert code == 2
    assert "could not read extends target `acme/presets:missing.yml`: no missing.yml" in out
    assert fake.token not in out + err
    # Without a token: the syntax only, as before.
    offline = {"PATH": env["PATH"]}
    code, out, err = await run_cli_async(
        "config", "validate", str(files["bad"]), cwd=tmp_path, env=offline
    )
    assert (code, out) == (0, f"{files['bad']}: valid\n"), err
