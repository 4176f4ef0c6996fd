"""The engine with configuration, end to end: config read from the target branch, broken
configs reported loudly, and every rule family judged through GitLab's own data."""

from __future__ import annotations

from bot.report import NOTE_MARKER
from tests.conftest import Bot
from tests.fake_gitlab import FakeGitLab
from tests.gfm import shown_text
from tests.scenarios import compliant_project, hook_for, judged_mr, project_with_rules

MR_HOOK = "Merge Request Hook"
STRICT = """\
rules:
  commit.dco:
    severity: error
  merge_request.labels:
    severity: error
    any_of: [bug, feature]
"""


def _note(fake: FakeGitLab, project_id: int, iid: int) -> str:
    [note] = [n for n in fake.notes(project_id, iid) if NOTE_MARKER in str(n["body"])]
    return str(note["body"])


def _state(fake: FakeGitLab, project_id: int, sha: str) -> tuple[str, str]:
    status = fake.statuses(project_id, sha)[-1]
    return str(status["status"]), str(status["description"])


async def test_an_mr_cannot_loosen_the_rules_that_judge_it(fake: FakeGitLab, bot: Bot) -> None:
    project = project_with_rules(fake, STRICT)
    # The MR's own branch switches every rule off...
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: relax the rules",
        files={".gitlab/compliance.yml": "rules:\n  commit.dco: {severity: 'off'}\n"},
        description="Relax.",
    )
    # ...but the target branch's rules judge it.
    assert _state(fake, project.id, mr.head_sha)[0] == "failed"
    note = _note(fake, project.id, mr.iid)
    assert "`commit.dco`" in note and "`merge_request.labels`" in note
    assert "Rules from `.gitlab/compliance.yml`" in note


async def test_a_broken_config_fails_loudly_with_line_numbers(fake: FakeGitLab, bot: Bot) -> None:
    broken = "rules:\n  commit.dco:\n    severity: loud\n  merge_request.titel: {}\n"
    project = project_with_rules(fake, broken)
    mr = await judged_mr(fake, bot, project, message="feat: x", description="x")
    state, description = _state(fake, project.id, mr.head_sha)
    assert state == "failed"
    assert description == (
        "could not complete: invalid .gitlab/compliance.yml (2 problems); "
        "fix it on the target branch"
    )
    note = _note(fake, project.id, mr.iid)
    assert ".gitlab/compliance.yml:3:5: rules.commit.dco.severity" in note
    assert ".gitlab/compliance.yml:4:3: " in note and "merge_request.titel" in note


async def test_root_config_is_accepted_and_gitlab_dir_wins(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(
        project.id,
        "main",
        message="chore: rules",
        files={".compliance.yml": "rules:\n  merge_request.description: {severity: 'off'}\n"},
    )
    mr = await judged_mr(fake, bot, project, message="feat: x", description="")
    assert _state(fake, project.id, mr.head_sha)[0] == "success"
    assert "Rules from `.compliance.yml`" in _note(fake, project.id, mr.iid)


async def test_every_rule_family_is_judged_end_to_end(fake: FakeGitLab, bot: Bot) -> None:
    every_family = """\
rules:
  commit.dco: {severity: error}
  merge_request.linked_issue: {severity: error}
  files.prohibited: {severity: error}
  files.secrets: {severity: error}
  files.max_size: {severity: warning, max_bytes: 100}
  repository.codeowners: {severity: warning}
  commit.signed: {severity: warning}
"""
    project = project_with_rules(fake, every_family)
    token = "glpat-" + "Ab3dEf6hIj9kLmN0pQ2s"
    mr = await judged_mr(
        fake,
        bot,
        project,
        message="feat: add settings",
        files={"id_rsa": "not really a key\n", "settings.py": f"TOKEN = '{token}'\n" + "#" * 200},
        description="Settings.",
    )
    note = _note(fake, project.id, mr.iid)
    for rule in (
        "commit.dco",
        "merge_request.linked_issue",
        "files.prohibited",
        "files.secrets",
        "files.max_size",
        "repository.codeowners",
        "commit.signed",
    ):
        assert f"`{rule}`" in note, rule
    assert token not in note and token[8:] not in note  # a secret is never echoed
    assert _state(fake, project.id, mr.head_sha)[0] == "failed"
    # The enabled rules needed more reads, and only those: sizes and signatures.
    assert fake.calls("HEAD", "/repository/files/")
    assert fake.calls("GET", "/signature")


async def test_signed_commits_pass_the_signature_rule(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(
        project.id,
        "main",
        message="chore: rules",
        files={".gitlab/compliance.yml": "rules:\n  commit.signed: {severity: error}\n"},
    )
    sha = fake.commit(project.id, "feature", message="feat: x")
    fake.signed[sha] = "verified"
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _state(fake, project.id, mr.head_sha)[0] == "success"


async def test_squashed_mr_is_judged_by_its_title(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="wip")
    fake.commit(project.id, "feature", message="more wip")
    mr = fake.open_mr(
        project.id, source_branch="feature", description="x", title="feat: squash me", squash=True
    )
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert _state(fake, project.id, mr.head_sha)[0] == "success"
    note = _note(fake, project.id, mr.iid)
    assert "more wip" not in note


async def test_default_rules_read_no_sizes_or_signatures(fake: FakeGitLab, bot: Bot) -> None:
    project = compliant_project(fake)
    fake.commit(project.id, "feature", message="feat: x")
    mr = fake.open_mr(project.id, source_branch="feature", description="x")
    await bot.send(MR_HOOK, hook_for(mr))
    await bot.settle()
    assert fake.calls("HEAD") == []
    assert fake.calls("GET", "/signature") == []
    assert fake.calls("GET", "/repository/files/") == []  # no config file: nothing fetched


def test_two_rules_never_report_the_same_fact() -> None:
    from bot import engine
    from bot.config import load
    from bot.model import Commit
    from bot.rules.base import Context, Scope

    rules = (
        "rules:\n  commit.subject_trailing_period: {severity: warning}\n"
        "  commit.body_blank_line: {severity: error}\n"
    )
    checks = engine.plan(load(rules, "x.yml"), Scope.PUSH, "main")
    commits = (
        Commit("a" * 40, "fix: handle it."),  # subject-full-stop: conventional says it
        Commit("b" * 40, "fix: handle it\nbody"),  # body-leading-blank: the error rule says it
    )
    context = Context(scope=Scope.PUSH, branch="main", target_branch="main", commits=commits)
    found = {
        (f.rule, f.location[:15], f.severity.value)
        for o in engine.evaluate(checks, context)
        for f in o.findings
        if f.rule.startswith("commit.")
    }
    assert found == {
        ("commit.conventional", "commit aaaaaaaa", "error"),
        ("commit.body_blank_line", "commit bbbbbbbb", "error"),
    }


PROTECTED_TARGET = "rules:\n  merge_request.target_branch_protected: {severity: error}\n"


async def test_an_mr_into_an_unprotected_branch_fails_the_protection_rule(
    fake: FakeGitLab, bot: Bot
) -> None:
    project = compliant_project(fake)
    fake.commit(
        project.id,
        "main",
        message="chore: rules",
        files={".gitlab/compliance.yml": PROTECTED_TARGET},
    )
    # `develop` is not protected; the default branch is (the fake protects only it).
    fake.commit(project.id, "develop", message="chore: start develop")
    fake.commit(
        project.id, "feature", message="feat: x", parent=fake.branch_head(project.id, "develop")
    )
    fake.commit(project.id, "fix", message="fix: y", parent=fake.branch_head(project.id, "main"))
    into_develop = fake.open_mr(
        project.id, source_branch="feature", target_branch="develop", description="x"
    )
    into_main = fake.open_mr(project.id, source_branch="fix", description="y")
    await bot.send(MR_HOOK, hook_for(into_develop))
    await bot.send(MR_HOOK, hook_for(into_main))
    await bot.settle()

    assert _state(fake, project.id, into_develop.head_sha)[0] == "failed"
    note = shown_text(_note(fake, project.id, into_develop.iid))
    assert "the target branch develop is not protected" in note
    assert _state(fake, project.id, into_main.head_sha)[0] == "success"
